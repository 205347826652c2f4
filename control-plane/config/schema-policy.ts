// The schemas of the policies that apply to one service: AuthorizationPolicy (who may call it) and TrafficPolicy (how).

import { Type } from '@sinclair/typebox';
import { DNS_LABEL_HINT, DNS_LABEL_PATTERN } from './names.ts';
import { Count, Duration, Enum, Percent, Port, ServiceRefText, Strict } from './schema-common.ts';
import { HeaderName, Method } from './schema-route.ts';

const Principal = Type.String({ minLength: 1, description: 'a SPIFFE ID, *, a prefix ending in * (spiffe://td/ns/default/sa/*) or a suffix starting with * (*/sa/web)' });
const PolicyPath = Type.String({ minLength: 1, description: 'an exact path (/items), a prefix (/items/*) or *' });
const Namespace = Type.String({ pattern: DNS_LABEL_PATTERN, maxLength: 63, errorMessage: DNS_LABEL_HINT });
const list = <T extends Parameters<typeof Type.Array>[0]>(item: T, description: string) => Type.Optional(Type.Array(item, { description }));

const Source = Strict(
  {
    principals: list(Principal, "the caller's identity is one of these"),
    notPrincipals: list(Principal, "the caller's identity is none of these"),
    namespaces: list(Namespace, "the caller's namespace is one of these"),
    notNamespaces: list(Namespace, "the caller's namespace is none of these"),
  },
  { minProperties: 1, emptyMessage: 'is empty; give principals, notPrincipals, namespaces or notNamespaces, or remove it' },
);

const Operation = Strict(
  {
    methods: list(Method, 'the method is one of these'),
    notMethods: list(Method, 'the method is none of these'),
    paths: list(PolicyPath, 'the path matches one of these'),
    notPaths: list(PolicyPath, 'the path matches none of these'),
    ports: list(Port, 'the port called is one of these'),
    notPorts: list(Port, 'the port called is none of these'),
  },
  { minProperties: 1, emptyMessage: 'is empty; give methods, paths or ports (or their not- forms), or remove it' },
);

const Condition = Strict({
  header: HeaderName,
  values: list(Type.String(), 'some value of the header is one of these'),
  notValues: list(Type.String(), 'no value of the header is one of these'),
});

const PolicyRule = Strict({
  from: list(Source, 'who calls: any one entry must match; omit for anyone'),
  to: list(Operation, 'what is called: any one entry must match; omit for anything'),
  when: list(Condition, 'conditions on the request: every entry must match (as in Istio); omit for always'),
});

export const AuthorizationPolicySpec = Strict({
  service: ServiceRefText,
  action: Type.Optional(Enum(['ALLOW', 'DENY', 'AUDIT'], { default: 'ALLOW', description: 'what happens to a request that matches a rule' })),
  rules: Type.Optional(Type.Array(PolicyRule, { description: 'a request matches the policy when it matches any rule; no rules matches nothing' })),
});

export const TrafficPolicySpec = Strict({
  service: ServiceRefText,
  loadBalancer: Type.Optional(Strict({ type: Type.Optional(Enum(['p2c-ewma', 'round-robin'], { default: 'p2c-ewma' })) })),
  connectionPool: Type.Optional(
    Strict({
      maxConnections: Type.Optional(Count('connections to each endpoint of the service, per calling sidecar', 1, 1024)),
      maxPendingRequests: Type.Optional(Count('requests waiting for a connection, per sidecar; more are refused with 503', 0, 1024)),
    }),
  ),
  circuitBreaker: Type.Optional(
    Strict({
      errorThresholdPercentage: Type.Optional(Type.Number({ minimum: 1, maximum: 100, default: 50, description: 'open when this % of calls in the window fail' })),
      volumeThreshold: Type.Optional(Count('calls in the window before the percentage counts', 0, 20)),
      consecutiveFailures: Type.Optional(Count('open after this many failures in a row', 1, 5)),
      resetTimeout: Type.Optional(Duration('how long the breaker stays open before letting a trial call through', '10s')),
      maxResetTimeout: Type.Optional(Duration('the longest open period, as it backs off after failed trials', '2m')),
    }),
  ),
  outlierDetection: Type.Optional(
    Strict({
      consecutive5xx: Type.Optional(Count('eject an endpoint after this many 5xx in a row', 1, 5)),
      interval: Type.Optional(Duration('how often ejections are reconsidered', '10s')),
      baseEjectionTime: Type.Optional(Duration('how long an endpoint is ejected the first time (then longer)', '30s')),
      maxEjectionPercent: Type.Optional(Percent('at most this % of endpoints ejected at once', 10)),
    }),
  ),
});
