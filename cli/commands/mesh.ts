// weft control-plane | apply | token | status | revoke: run the control plane and operate it.

import { readFileSync } from 'node:fs';
import { WeftError } from '../../errors.ts';
import { HeapSettler } from '../../control-plane/heap-settle.ts';
import { ControlPlane, jsonLog, type ControlPlaneOptions } from '../../control-plane/control-plane.ts';
import { DEFAULT_STATE_DIR } from '../../control-plane/state-dir.ts';
import type { StatusReport } from '../../control-plane/api/operator.ts';
import { isMetricsListenError } from '../../control-plane/api/metrics-listener.ts';
import { listenAddress, optional, parse, parseDuration, required } from '../args.ts';
import type { Command } from '../command.ts';
import { listenError } from '../listen-error.ts';
import { CONNECT_FLAGS, CONNECT_HELP, operatorClient } from '../operator-client.ts';
import { readiness } from '../sidecar-admin.ts';

export const controlPlane: Command = {
  name: 'control-plane',
  help: `Usage: weft control-plane --config mesh.yaml [--state DIR] [--listen HOST:PORT] [--metrics-listen HOST:PORT]
                         [--max-connections-per-client N] [--stream-keepalive DURATION]

Runs until interrupted. On first start it creates the CA in DIR/ca for the Mesh's trust domain. It watches
mesh.yaml and applies every valid change (an invalid one is refused whole and the last good config stays live;
either way a line on stdout says so).
State (CA, issuance journal, used tokens, last config, revocations, admin token) lives in DIR (default
${DEFAULT_STATE_DIR}) and survives restarts. One control plane per DIR: while this one runs, DIR/control-plane.lock
refuses another (weft token and weft ca beside it are fine). Logs are JSON lines on stderr.

  --listen HOST:PORT   default 127.0.0.1:15010; port 0 picks a free port (see DIR/control-plane.json)
  --metrics-listen HOST:PORT
                       serve Prometheus metrics there: GET /metrics over plain HTTP, like istiod's port 15014
                       (127.0.0.1:15014, or :15014 for every interface). Port 0 picks a free port, printed at
                       start. Off by default (WEFT_METRICS_LISTEN). The metrics: docs/observability.md
  --max-connections-per-client N
                       open connections one address may hold (a node's sidecars share theirs); default 256
                       (WEFT_MAX_CONNECTIONS_PER_CLIENT)
  --stream-keepalive DURATION
                       how often each sidecar's snapshot stream gets a keepalive, 1s to 30s; default 10s. A sidecar
                       that hears nothing for three of them reconnects (WEFT_STREAM_KEEPALIVE)`,
  async run(argv) {
    const { values } = parse('control-plane', argv, { config: { type: 'string', short: 'c' }, state: { type: 'string' }, listen: { type: 'string' }, 'metrics-listen': { type: 'string' }, 'max-connections-per-client': { type: 'string' }, 'stream-keepalive': { type: 'string' } });
    const listenFlag = optional(values, 'listen');
    const listenText = listenFlag ?? process.env.WEFT_LISTEN ?? '127.0.0.1:15010';
    const listen = listenAddress('listen', listenText, { env: listenFlag === undefined && process.env.WEFT_LISTEN ? 'WEFT_LISTEN' : undefined, example: '127.0.0.1:15010' });
    // Off without the flag, and with an empty WEFT_METRICS_LISTEN as with none.
    const metricsFlag = optional(values, 'metrics-listen');
    const metricsText = metricsFlag ?? (process.env.WEFT_METRICS_LISTEN || undefined);
    const metrics = metricsText === undefined ? undefined : listenAddress('metrics-listen', metricsText, { env: metricsFlag === undefined ? 'WEFT_METRICS_LISTEN' : undefined, example: '127.0.0.1:15014' });
    // The same port on the same address, or on every address (a wildcard bind takes the port on all of them).
    const everywhere = (host: string) => host === '' || host === '0.0.0.0' || host === '::';
    if (metrics && metrics.port !== 0 && metrics.port === listen.port && (metrics.host === listen.host || everywhere(metrics.host) || everywhere(listen.host))) {
      throw new WeftError('WEFT_CLI_USAGE', `--metrics-listen ${JSON.stringify(metricsText)} would take the API's port (--listen ${listenText}); give metrics a port of their own (istiod's is 15014)`, { flag: 'metrics-listen' });
    }
    const capText = optional(values, 'max-connections-per-client') ?? process.env.WEFT_MAX_CONNECTIONS_PER_CLIENT;
    const maxConnectionsPerClient = capText === undefined ? undefined : Number(capText);
    if (maxConnectionsPerClient !== undefined && !(Number.isSafeInteger(maxConnectionsPerClient) && maxConnectionsPerClient >= 1)) {
      throw new WeftError('WEFT_CLI_USAGE', `--max-connections-per-client ${JSON.stringify(capText)} must be a whole number of at least 1`);
    }
    const keepaliveText = optional(values, 'stream-keepalive') ?? process.env.WEFT_STREAM_KEEPALIVE;
    const keepaliveS = keepaliveText === undefined ? undefined : parseDuration('stream-keepalive', keepaliveText);
    // Under 1 s is a flood of writes to every sidecar; over 30 s, the control plane's 60 s idle timeout would
    // close a quiet stream between two keepalives' worth of silence checks.
    if (keepaliveS !== undefined && (keepaliveS < 1 || keepaliveS > 30)) {
      throw new WeftError('WEFT_CLI_USAGE', `--stream-keepalive ${JSON.stringify(keepaliveText)} must be between 1s and 30s`, { flag: 'stream-keepalive' });
    }
    // A change to the watched file is told on stdout too, where whoever edits it is looking (weft up relays it).
    const onConfigFile: ControlPlaneOptions['onConfigFile'] = (e) =>
      process.stdout.write(
        'version' in e
          ? `config ${e.file} changed: applied as version ${e.version}\n${e.warnings.map((w) => `  warning: ${w}\n`).join('')}`
          : 'note' in e
            ? `config ${e.file} ${e.note}\n`
            : `config ${e.file} changed but is not valid; the last good config stays live:\n${e.error.replace(/^/gm, '  ')}\n`,
      );
    const stateDir = optional(values, 'state') ?? DEFAULT_STATE_DIR;
    let cp: ControlPlane;
    try {
      cp = await ControlPlane.start({ stateDir, configPath: optional(values, 'config'), ...listen, metrics, onConfigFile, maxConnectionsPerClient, keepaliveMs: keepaliveS === undefined ? undefined : keepaliveS * 1000 });
    } catch (err) {
      if (isMetricsListenError(err)) {
        throw listenError(err, { '--metrics-listen': metrics!.port }, `is another control plane, or another exporter, serving metrics there? Pass another --metrics-listen HOST:PORT, or port 0 for a free one (printed at start, and in ${stateDir}/control-plane.json)`) ?? err;
      }
      throw listenError(err, { '--listen': listen.port }, `is a control plane with another --state (or weft up) running there? Pass another --listen HOST:PORT, or port 0 for a free one (its address is then in ${stateDir}/control-plane.json)`) ?? err;
    }
    // A busy spell's garbage goes back to the OS once things settle (control-plane/heap-settle.ts).
    const settler = new HeapSettler({ log: jsonLog });
    // Stopping is in place before the line that says the control plane is up: a supervisor (a test, weft up) may
    // send SIGTERM the moment it reads that line, and a signal with no handler yet would kill the process without
    // a stop (the state dir's lock left behind; seen once in a full test run).
    const stopped = new Promise<void>((resolve) => {
      const stop = () => void (settler.stop(), cp.stop().then(resolve));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    // The metrics line first: "listening on" is the line that says the control plane is up (weft up waits for it).
    if (cp.metricsUrl) process.stdout.write(`control plane metrics on ${cp.metricsUrl}\n`);
    process.stdout.write(`control plane ${cp.identity} listening on ${cp.url}\n`);
    settler.start();
    await stopped;
    return 0;
  },
};

export const apply: Command = {
  name: 'apply',
  help: `Usage: weft apply -f mesh.yaml [connection flags]

Validates on the control plane and pushes the change to every sidecar. On any error nothing changes and every
problem is listed with file:line:col.

${CONNECT_HELP}`,
  async run(argv, out) {
    const { values } = parse('apply', argv, { file: { type: 'string', short: 'f' }, ...CONNECT_FLAGS });
    const file = required('apply', values, 'file');
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new WeftError('WEFT_CLI_USAGE', `${file}: cannot be read (${(err as NodeJS.ErrnoException).code})`);
    }
    const client = operatorClient(values);
    try {
      const r = await client.request<{ version: number; summary: Record<string, number>; warnings?: string[] }>('PUT', '/v1/config', text, { contentType: 'application/yaml', headers: { 'x-weft-file': file } });
      if (!out.json) for (const w of r.warnings ?? []) process.stderr.write(`warning: ${w}\n`);
      out.result(r, () => `applied ${file}: version ${r.version} (${Object.entries(r.summary).map(([k, v]) => `${v} ${k}`).join(', ')})`);
    } finally {
      client.close();
    }
  },
};

export const token: Command = {
  name: 'token',
  help: `Usage: weft token --service S [--namespace N] [--ttl 10m] [connection flags]

Prints a signed, single-use token bound to the service's SPIFFE ID (from its serviceAccount), valid for --ttl
(default 10m). A sidecar redeems it once for its first certificate; a replay is refused.

${CONNECT_HELP}`,
  async run(argv, out) {
    const { values } = parse('token', argv, { service: { type: 'string' }, namespace: { type: 'string' }, ttl: { type: 'string' }, ...CONNECT_FLAGS });
    const body = {
      service: required('token', values, 'service'),
      namespace: optional(values, 'namespace') ?? 'default',
      ttlSeconds: values.ttl === undefined ? undefined : parseDuration('ttl', values.ttl as string),
    };
    const client = operatorClient(values);
    try {
      const t = await client.request<{ token: string; identity: string; expiresAt: string; warning?: string }>('POST', '/v1/tokens', body);
      // On stderr: stdout is the token alone, for $(weft token ...).
      if (t.warning) process.stderr.write(`weft: warning: ${t.warning}\n`);
      out.result(t, () => t.token);
    } finally {
      client.close();
    }
  },
};

export const status: Command = {
  name: 'status',
  help: `Usage: weft status [connection flags]

Like istioctl proxy-status: SYNCED when a sidecar has ACKed the last snapshot sent to it, STALE while an ACK
is outstanding, NACK when it refused one (with its reason). READY is what the sidecar's own /ready says (asked
at the admin address it registered; "?" when it does not answer, e.g. from another host); LABELS are its
version labels.

${CONNECT_HELP}`,
  async run(argv, out) {
    const { values } = parse('status', argv, CONNECT_FLAGS);
    const client = operatorClient(values);
    try {
      const report = await client.request<StatusReport>('GET', '/v1/status');
      const sidecars = await Promise.all(report.sidecars.map(async (e) => ({ ...e, ready: await readiness(e.admin as string | null | undefined) })));
      const s = { ...report, sidecars };
      out.result(s, () => statusTable(s));
    } finally {
      client.close();
    }
  },
};

function statusTable(s: StatusReport): string {
  const labels = (l: unknown) => Object.entries((l ?? {}) as Record<string, string>).map(([k, v]) => `${k}=${v}`).join(',') || '-';
  const ready = (r: unknown) => (r === true ? 'yes' : r === false ? 'no' : '?');
  const rows = s.sidecars.map((e) => [String(e.id), String(e.service), String(e.identity), String(e.ackedVersion ?? '-'), String(e.sentVersion ?? '-'), String(e.ack), String(e.certExpiry), ready(e.ready), labels(e.labels)]);
  const head = ['SIDECAR', 'SERVICE', 'IDENTITY', 'ACKED', 'SENT', 'STATE', 'CERT EXPIRES', 'READY', 'LABELS'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const nacks = s.sidecars.filter((e) => e.ack === 'NACK').map((e) => `  ${e.id}: NACK of version ${e.sentVersion}: ${e.nackError}`);
  // One version counter: an apply makes a version, and so does each change of endpoints after it.
  const version = s.version === s.configVersion ? `version ${s.version}` : `version ${s.version} (the config as applied at ${s.configVersion}, with endpoint changes since)`;
  return [`${version}, ${s.sidecars.length} sidecar(s)`, line(head), ...rows.map(line), ...nacks].join('\n');
}

export const revoke: Command = {
  name: 'revoke',
  help: `Usage: weft revoke (--serial HEX | --identity SPIFFE_ID) [connection flags]

The revocation is pushed to every sidecar with the config; from then on the certificate is refused.

${CONNECT_HELP}`,
  async run(argv, out) {
    const { values } = parse('revoke', argv, { serial: { type: 'string' }, identity: { type: 'string' }, ...CONNECT_FLAGS });
    const client = operatorClient(values);
    try {
      const r = await client.request<{ revoked: { serial: string; identity?: string }[] }>('POST', '/v1/revocations', { serial: optional(values, 'serial'), identity: optional(values, 'identity') });
      out.result(r, () => r.revoked.map((x) => `revoked ${x.serial}${x.identity ? ` (${x.identity})` : ''}`).join('\n'));
    } finally {
      client.close();
    }
  },
};
