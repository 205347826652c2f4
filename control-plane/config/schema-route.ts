// The schema of a Route: ordered rules that match requests and split them across a service's subsets.

import { Type } from '@sinclair/typebox';
import { COOKIE_NAME_HINT, COOKIE_NAME_PATTERN, HEADER_NAME_HINT, HEADER_NAME_PATTERN, METHOD_HINT, METHOD_PATTERN } from './names.ts';
import { Count, Duration, Name, OneOf, Percent, ServiceRefText, Strict } from './schema-common.ts';

const Regex = Type.String({ minLength: 1, description: 'a regular expression (RE2-like JS syntax) that must match the whole value' });
const UrlPath = (description: string) => Type.String({ pattern: '^/', errorMessage: "is not a path; it must start with '/'", description });

export const Method = Type.String({ pattern: METHOD_PATTERN, errorMessage: METHOD_HINT, description: 'an HTTP method in uppercase' });

export const HeaderName = Type.String({ pattern: HEADER_NAME_PATTERN, errorMessage: HEADER_NAME_HINT, description: 'an HTTP header name (matched case-insensitively)' });

const PathMatch = OneOf(
  { exact: Type.Optional(UrlPath('the whole path')), prefix: Type.Optional(UrlPath('a path prefix')), regex: Type.Optional(Regex) },
  { description: 'exactly one of exact, prefix or regex' },
);

const HeaderValueMatch = OneOf(
  {
    exact: Type.Optional(Type.String()),
    prefix: Type.Optional(Type.String({ minLength: 1 })),
    regex: Type.Optional(Regex),
    present: Type.Optional(Type.Literal(true, { description: 'the header is sent, with any value' })),
  },
  { description: 'exactly one of exact, prefix, regex or present: true' },
);

const RequestMatch = Strict(
  {
    path: Type.Optional(PathMatch),
    methods: Type.Optional(Type.Array(Method, { minItems: 1 })),
    headers: Type.Optional(Type.Record(Type.String(), HeaderValueMatch, { minProperties: 1, description: 'header name → how its value must match' })),
  },
  { minProperties: 1, description: 'all of its fields must match', emptyMessage: 'is an empty match, which would match every request; give path, methods or headers, or remove the match list to match everything' },
);

const Destination = Strict({
  subset: Type.Optional(Name('a subset of the service; omit for any endpoint')),
  weight: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, description: 'share of requests, 0..100; the weights of a rule sum to 100 (a lone destination may omit it)' })),
});

const Stickiness = OneOf(
  {
    header: Type.Optional(Type.String({ pattern: HEADER_NAME_PATTERN, errorMessage: HEADER_NAME_HINT, description: 'requests with the same value of this header go to the same destination' })),
    cookie: Type.Optional(Type.String({ pattern: COOKIE_NAME_PATTERN, errorMessage: COOKIE_NAME_HINT, description: 'requests with the same value of this cookie go to the same destination' })),
  },
  { description: 'exactly one of header or cookie' },
);

export const RETRY_ON_PATTERN = '^(connect-failure|reset|[45][0-9][0-9]|cancelled|deadline-exceeded|internal|resource-exhausted|unavailable)$';

const Retries = Strict({
  attempts: Type.Optional(Count('retries after the first try', 0, 2, 10)),
  perTryTimeout: Type.Optional(Duration('timeout of each try; default: what is left of the rule timeout')),
  on: Type.Optional(
    Type.Array(Type.String({ pattern: RETRY_ON_PATTERN, errorMessage: 'is not a retry condition; use connect-failure, reset, a 4xx/5xx status code as a string such as "503", or (gRPC) cancelled, deadline-exceeded, internal, resource-exhausted, unavailable' }), {
      minItems: 1,
      description: 'when to retry',
      default: ['connect-failure', 'reset'],
    }),
  ),
  budget: Type.Optional(
    Strict({
      percent: Type.Optional(Percent('retries may add at most this % to the requests', 20)),
      minPerSecond: Type.Optional(Count('retries always allowed per second, whatever the percent', 0, 3)),
    }),
  ),
});

const Mirror = Strict({
  subset: Name('the subset that receives a copy of the requests (its answers are ignored)'),
  percent: Type.Optional(Percent('share of requests copied', 100)),
});

const Fault = Strict(
  {
    delay: Type.Optional(Strict({ fixed: Duration('how long to delay'), percent: Type.Optional(Percent('share of requests delayed', 100)) })),
    abort: Type.Optional(Strict({ status: Type.Integer({ minimum: 200, maximum: 599, description: 'the HTTP status to answer with' }), percent: Type.Optional(Percent('share of requests aborted', 100)) })),
  },
  { minProperties: 1, emptyMessage: 'is empty; give delay, abort or both, or remove fault' },
);

const Rule = Strict({
  name: Type.Optional(Name('a name for this rule, unique within the route (shows in metrics and logs)')),
  match: Type.Optional(Type.Array(RequestMatch, { minItems: 1, description: 'any one entry must match; omit to match every request' })),
  destinations: Type.Array(Destination, { minItems: 1, description: 'where matching requests go, by weight' }),
  stickiness: Type.Optional(Stickiness),
  timeout: Type.Optional(Duration('total time for a request, retries included')),
  retries: Type.Optional(Retries),
  mirror: Type.Optional(Mirror),
  fault: Type.Optional(Fault),
});

export const RouteSpec = Strict({
  service: ServiceRefText,
  rules: Type.Array(Rule, { minItems: 1, description: 'in order; the first rule that matches a request routes it' }),
});
