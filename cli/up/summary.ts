// What `weft up` prints once the mesh answers: where to go, what runs where, and what to try (text or JSON).

import { basename, isAbsolute, relative } from 'node:path';
import type { RunningMesh } from './loopback-mesh.ts';
import type { MovedPort } from './ports.ts';

export interface Summary {
  readonly mesh: RunningMesh;
  readonly configFile: string;
  /** absolute */
  readonly stateDir: string;
  readonly logsDir: string;
  /** the --state flag the operator gave, repeated in the commands to try; undefined for the default */
  readonly stateFlag: string | undefined;
  readonly moved: readonly MovedPort[];
  readonly notes: readonly string[];
  /** the config's warnings (allowed, but most often typos), as file:line:col lines */
  readonly configWarnings: readonly string[];
}

/** A path as the operator would type it from here: relative when under the working directory. */
export function shown(path: string): string {
  const r = relative(process.cwd(), path);
  return r === '' ? '.' : r.startsWith('..') || isAbsolute(r) ? path : r;
}

function table(rows: readonly (readonly string[])[], indent = '  '): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

/** Command, then what it does; a command too long for the column has its description on the next line. */
function commands(rows: readonly (readonly [string, string])[], indent = '  ', maxWidth = 56): string[] {
  const width = Math.max(...rows.map(([cmd]) => cmd.length).filter((n) => n <= maxWidth));
  return rows.flatMap(([cmd, what]) => (cmd.length <= width ? [`${indent}${cmd.padEnd(width)}  ${what}`] : [`${indent}${cmd}`, `${indent}${' '.repeat(width)}  ${what}`]));
}

export function summaryText(s: Summary): string {
  const { mesh } = s;
  const state = s.stateFlag ? ` --state ${s.stateFlag}` : '';
  const ingress = mesh.ingress;
  const web = mesh.sidecars.find((x) => x.service === ingress.to);
  const catalogV1 = mesh.sidecars.find((x) => x.service === 'catalog' && x.labels.version === 'v1');
  const hasV2 = mesh.sidecars.some((x) => x.service === 'catalog' && x.labels.version === 'v2');

  const rows = [['SIDECAR', 'IDENTITY', 'ADMIN: /ready /config /certs /metrics', 'APP']];
  for (const x of mesh.sidecars) {
    const labels = Object.entries(x.labels).map(([k, v]) => `${k}=${v}`).join(',');
    const app = x.app ? `${basename(x.app)} on :${x.ports.app}${labels ? ` (${labels})` : ''}` : `none; :${new URL(ingress.url).port} goes to ${ingress.to}`;
    rows.push([x.name, x.identity, x.admin, app]);
  }
  const tries: [string, string][] = [
    [`curl ${ingress.url}`, `the shop${hasV2 ? ' (catalog v1 or v2, split 90/10)' : ''}`],
  ];
  if (ingress.to === 'web') tries.push([`curl ${ingress.url}api`, 'the same as JSON: who called whom']);
  if (hasV2) tries.push([`curl -H 'x-canary: true' ${ingress.url}api`, 'always catalog v2 (the Route\'s canary rule)']);
  if (web) tries.push([`curl ${web.admin}/config`, `the config ${web.name}'s sidecar got`]);
  tries.push(
    [`npm run weft -- status${state}`, 'every sidecar: SYNCED or not, cert expiry'],
    [`npm run weft -- top${state}`, 'live requests/s, success rate and p99 per service and subset'],
  );
  if (hasV2) tries.push([`npm run weft -- canary catalog --subset v2 --weight 50${state}`, 'shift the split live (then watch it in top)']);
  if (web) tries.push([`npm run weft -- policy check --from spiffe://${mesh.trustDomain}/ns/default/sa/ingress --to catalog --path /items${state}`, 'why the ingress may not call catalog']);
  tries.push(
    [`npm run weft -- validate -f ${s.configFile}`, 'check the config offline'],
    [`npm run weft -- apply -f ${s.configFile}${state}`, `after an edit${hasV2 ? ' (e.g. the catalog weights)' : ''}; saving applies it too (weft up says if it took)`],
  );
  if (catalogV1) tries.push([`curl 'http://127.0.0.1:${catalogV1.ports.app}/fail?on=1'`, 'make catalog v1 fail (on=0 to stop): the breaker demo']);

  const logs = [mesh.controlPlane.log, ...mesh.sidecars.map((x) => x.log)].map((l) => basename(l));
  return [
    `weft up: the mesh in ${s.configFile} is running on loopback (trust domain ${mesh.trustDomain})`,
    ...s.moved.map((m) => `note: port ${m.wanted} (${m.slot}) was taken, so it is on ${m.got} instead`),
    ...s.notes.map((n) => `note: ${n}`),
    ...[...s.configWarnings, ...mesh.warnings].map((w) => `warning: ${w}`),
    '',
    `  Open ${ingress.url}`,
    `    the ingress: plain HTTP in, then mTLS to ${ingress.to} as ${ingress.identity}`,
    '',
    ...table(rows),
    '',
    ...table([
      ['control plane', `${mesh.controlPlane.url}  ${mesh.controlPlane.identity}`],
      ...(mesh.controlPlane.metricsUrl ? [['  its metrics', `${mesh.controlPlane.metricsUrl}  (Prometheus; sidecars connected, pushes, certificates)`] as [string, string]] : []),
      ['state', `${shown(s.stateDir)}  (the CA in ${shown(s.stateDir)}/ca is kept and reused next time)`],
      ['logs', `${shown(s.logsDir)}/  ${logs.join(' ')}`],
    ]),
    '',
    'Try:',
    ...commands(tries),
    '',
    'Ctrl-C stops everything: the sidecars drain first, then the control plane.',
  ].join('\n');
}

export function summaryJson(s: Summary): Record<string, unknown> {
  return {
    file: s.configFile,
    pid: process.pid,
    trustDomain: s.mesh.trustDomain,
    ingress: s.mesh.ingress,
    controlPlane: s.mesh.controlPlane,
    sidecars: s.mesh.sidecars,
    state: s.stateDir,
    logs: s.logsDir,
    movedPorts: s.moved,
    notes: s.notes,
    warnings: [...s.configWarnings, ...s.mesh.warnings],
  };
}
