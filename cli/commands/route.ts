// weft canary / weft route show: shift a live traffic split, and show a service's routing as the sidecars see it.

import { parseAllDocuments, type Document } from 'yaml';
import { isWeftError, WeftError } from '../../errors.ts';
import { parseMeshConfigOrThrow } from '../../control-plane/config/load.ts';
import { findService, routeFor } from '../../control-plane/config/lookup.ts';
import type { MeshConfig, RouteRule, ServiceConfig } from '../../control-plane/config/types.ts';
import { configTag } from '../../control-plane/api/config-tag.ts';
import { suggest } from '../../control-plane/config/suggest.ts';
import { parse, required } from '../args.ts';
import type { Command } from '../command.ts';
import { CONNECT_FLAGS, CONNECT_HELP, operatorClient } from '../operator-client.ts';

/**
 * New weights for a split: `subset` gets `weight`, the others share the rest in proportion to what they had
 * (evenly if they had nothing), rounded so the total is exactly 100.
 */
export function rebalance(current: readonly { subset: string; weight: number }[], subset: string, weight: number): { subset: string; weight: number }[] {
  const others = current.filter((d) => d.subset !== subset);
  const rest = 100 - weight;
  const total = others.reduce((s, d) => s + d.weight, 0);
  const shares = others.map((d) => ({ subset: d.subset, exact: total > 0 ? (d.weight / total) * rest : rest / others.length }));
  const out = shares.map((s) => ({ subset: s.subset, weight: Math.floor(s.exact) }));
  let left = rest - out.reduce((s, d) => s + d.weight, 0);
  // Largest remainders first, so rounding never changes the order of the shares.
  for (const i of shares.map((s, i) => [s.exact - Math.floor(s.exact), i] as const).sort((a, b) => b[0] - a[0]).map(([, i]) => i)) {
    if (left-- <= 0) break;
    out[i]!.weight++;
  }
  return [...out, { subset, weight }];
}

function splitServiceArg(command: string, text: string): { name: string; namespace: string } {
  const [name, namespace = 'default', ...rest] = text.split('.');
  if (!name || rest.length) throw new WeftError('WEFT_CLI_USAGE', `weft ${command}: ${JSON.stringify(text)} is not SERVICE or SERVICE.NAMESPACE`);
  return { name, namespace };
}

function ruleLine(rule: RouteRule, i: number): string {
  const match = rule.match.length === 0
    ? 'every request'
    : rule.match.map((m) => [m.path && `path ${m.path.type} ${m.path.value}`, m.methods.length && `method ${m.methods.join('|')}`, ...m.headers.map((h) => (h.type === 'present' ? `header ${h.name} present` : `header ${h.name} ${h.type} ${h.value}`))].filter(Boolean).join(' and ')).join(' or ');
  const split = rule.destinations.map((d) => `${d.subset ?? '(any)'} ${d.weight}%`).join(', ');
  const extras = [
    rule.stickiness && `sticky by ${rule.stickiness.type} ${rule.stickiness.name}`,
    rule.timeoutMs !== null && `timeout ${rule.timeoutMs}ms`,
    rule.retries && `retries ${rule.retries.attempts} (budget ${rule.retries.budget.percent}% + ${rule.retries.budget.minPerSecond}/s)`,
    rule.mirror && `mirror ${rule.mirror.percent}% to ${rule.mirror.subset}`,
    rule.fault?.delay && `fault delay ${rule.fault.delay.fixedMs}ms for ${rule.fault.delay.percent}%`,
    rule.fault?.abort && `fault abort ${rule.fault.abort.status} for ${rule.fault.abort.percent}%`,
  ].filter(Boolean);
  return `  ${i}${rule.name ? ` (${rule.name})` : ''}: ${match} → ${split}${extras.length ? `; ${extras.join('; ')}` : ''}`;
}

export const routeShow: Command = {
  name: 'route show',
  help: `Usage: weft route show SERVICE[.NAMESPACE] [connection flags]

Prints the service's route as the sidecars apply it: rules in order, what each matches, its split, timeout,
retries, mirror and faults; and the subsets with their labels.

${CONNECT_HELP}`,
  async run(argv, out) {
    const { values, positionals } = parse('route show', argv, CONNECT_FLAGS, true);
    if (positionals.length !== 1) throw new WeftError('WEFT_CLI_USAGE', 'weft route show: name one service');
    const ref = splitServiceArg('route show', positionals[0]!);
    const client = operatorClient(values);
    try {
      const config = parseMeshConfigOrThrow(await client.request<string>('GET', '/v1/config'), 'live config');
      const service = findService(config, ref.name, ref.namespace);
      if (!service) throw noService(config, ref);
      const route = routeFor(config, service);
      out.result({ service, route }, () => [
        `${service.name}.${service.namespace} (${service.protocol}, port ${service.port}), subsets: ${service.subsets.map((s) => `${s.name} {${Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(',')}}`).join(', ') || 'none'}`,
        route ? `route ${route.namespace}/${route.name}:` : 'no route: every request goes to any endpoint',
        ...(route?.rules.map(ruleLine) ?? []),
      ].join('\n'));
    } finally {
      client.close();
    }
  },
};

/** No such Service: say so, with the closest name there is, or what there is. */
function noService(config: MeshConfig, ref: { name: string; namespace: string }): WeftError {
  const names = config.services.map((s) => (s.namespace === ref.namespace ? s.name : `${s.name}.${s.namespace}`));
  const near = suggest(ref.name, names);
  return new WeftError('WEFT_CLI_USAGE', `no Service ${ref.name}.${ref.namespace} in the live config; ${near ? `did you mean ${near}?` : `the Services: ${names.join(', ') || 'none'}`}`);
}

/** The live config's text with `ref`'s default split changed so that `subset` gets `weight`. */
function canaryEdit(text: string, ref: { name: string; namespace: string }, subset: string, weight: number): { next: string; service: ServiceConfig; split: { subset: string; weight: number }[] } {
  const config = parseMeshConfigOrThrow(text, 'live config');
  const service = findService(config, ref.name, ref.namespace);
  if (!service) throw noService(config, ref);
  if (!service.subsets.some((s) => s.name === subset)) {
    throw new WeftError('WEFT_CLI_USAGE', `${ref.name}.${ref.namespace} has no subset ${JSON.stringify(subset)}; its subsets: ${service.subsets.map((s) => s.name).join(', ') || 'none'}`);
  }
  const docs = parseAllDocuments(text) as Document.Parsed[];
  const route = routeFor(config, service);
  const evenly = () => rebalance(service.subsets.map((s) => ({ subset: s.name, weight: 0 })), subset, weight);
  let split: { subset: string; weight: number }[];
  if (route) {
    const doc = docs.find((d) => d.get('kind') === 'Route' && d.getIn(['metadata', 'name']) === route.name && (d.getIn(['metadata', 'namespace']) ?? 'default') === route.namespace)!;
    const index = route.rules.map((r, i) => [r, i] as const).filter(([r]) => r.match.length === 0).at(-1)?.[1];
    if (index === undefined) {
      // Every rule matches on something (a header, a path): none is the default split, and those are left alone.
      // A default rule is added after them, for the requests none of them takes.
      split = evenly();
      (doc.getIn(['spec', 'rules']) as { add(v: unknown): void }).add(doc.createNode({ destinations: split }));
    } else {
      const current = route.rules[index]!.destinations;
      if (current.length === 1 && current[0]!.subset === null) split = evenly();
      else if (current.some((d) => d.subset === null)) {
        const shown = current.map((d) => `${d.subset ?? '(any subset)'} ${d.weight}%`).join(', ');
        throw new WeftError('WEFT_CLI_USAGE', `the default rule of Route ${route.namespace}/${route.name} (rule ${index}) splits ${shown}: a share for any subset cannot be rebalanced by name; give it a subset in the config (weft apply), then use weft canary`);
      } else split = rebalance(current.map((d) => ({ subset: d.subset!, weight: d.weight })), subset, weight);
      doc.setIn(['spec', 'rules', index, 'destinations'], doc.createNode(split));
    }
  } else {
    split = evenly();
    docs.push(parseAllDocuments(`apiVersion: weft/v1\nkind: Route\nmetadata: {name: ${service.name}, namespace: ${service.namespace}}\nspec:\n  service: ${service.name}\n  rules:\n    - destinations: ${JSON.stringify(split)}\n`)[0] as Document.Parsed);
  }
  return { next: docs.map((d) => String(d).replace(/^---\n/, '')).join('---\n'), service, split };
}

export const canary: Command = {
  name: 'canary',
  help: `Usage: weft canary SERVICE[.NAMESPACE] --subset NAME --weight PERCENT [connection flags]

Changes the split of the service's default rule (its last rule that matches every request) live: the subset
gets PERCENT, the other subsets share the rest as before. Rules that match on headers or paths (a canary for
testers, say) are left as they are; if every rule matches on something, a default rule is added after them.
Without a Route for the service, one is created. The change is validated
and pushed like any 'weft apply'; no connection is dropped.

${CONNECT_HELP}`,
  async run(argv, out) {
    const { values, positionals } = parse('canary', argv, { subset: { type: 'string' }, weight: { type: 'string' }, ...CONNECT_FLAGS }, true);
    if (positionals.length !== 1) throw new WeftError('WEFT_CLI_USAGE', 'weft canary: name one service');
    const ref = splitServiceArg('canary', positionals[0]!);
    const subset = required('canary', values, 'subset');
    const weightText = required('canary', values, 'weight');
    if (!/^\d{1,3}%?$/.test(weightText) || Number(weightText.replace(/%$/, '')) > 100) throw new WeftError('WEFT_CLI_USAGE', `--weight ${JSON.stringify(weightText)} must be a whole percentage from 0 to 100`);
    const weight = Number(weightText.replace(/%$/, ''));
    const client = operatorClient(values);
    try {
      // Read, edit, write back only if nothing changed in between (If-Match): a change made meanwhile by another
      // canary or apply is read again and kept, never overwritten.
      for (let attempt = 1; ; attempt++) {
        const text = await client.request<string>('GET', '/v1/config');
        const edit = canaryEdit(text, ref, subset, weight);
        try {
          const r = await client.request<{ version: number }>('PUT', '/v1/config', edit.next, { contentType: 'application/yaml', headers: { 'x-weft-file': `weft canary ${ref.name}`, 'if-match': configTag(text) } });
          const { service, split } = edit;
          out.result({ service: `${service.name}.${service.namespace}`, split, version: r.version }, () => `${service.name}.${service.namespace}: ${split.map((d) => `${d.subset} ${d.weight}%`).join(', ')} (config version ${r.version}, pushed)`);
          return;
        } catch (err) {
          if (!isWeftError(err, 'WEFT_CONFIG_CONFLICT') || attempt >= 5) throw err;
        }
      }
    } finally {
      client.close();
    }
  },
};
