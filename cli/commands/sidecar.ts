// weft sidecar: run the data plane for one workload (and, after `--`, the workload itself).

import { WeftError } from '../../errors.ts';
import { parseCertificates } from '../../ca/pem.ts';
import { workloadId } from '../../ca/spiffe-id.ts';
import { spiffeIdOfCertificate } from '../../ca/svid.ts';
import { startApp } from '../../sidecar/app-process.ts';
import { DEFAULT_MAX_CONNECTIONS_PER_ADDRESS } from '../../sidecar/inbound/listener.ts';
import { Sidecar, type UpstreamPort } from '../../sidecar/sidecar.ts';
import { isoTime } from '../../sidecar/clock.ts';
import { parse, parseDuration } from '../args.ts';
import type { Command } from '../command.ts';
import { listenError } from '../listen-error.ts';

// Not an ES import: it would read fs.promises, which loads node:readline and more (see sidecar/http/node-http.ts).
const { readFileSync } = process.getBuiltinModule('node:fs');

// Each flag, its environment variable, and its default.
const FLAGS = {
  'control-plane': ['WEFT_CONTROL_PLANE', undefined],
  'trust-bundle': ['WEFT_TRUST_BUNDLE', undefined],
  'control-plane-identity': ['WEFT_CONTROL_PLANE_IDENTITY', undefined],
  token: ['WEFT_TOKEN', undefined],
  'token-file': ['WEFT_TOKEN_FILE', undefined],
  service: ['WEFT_SERVICE', undefined],
  namespace: ['WEFT_NAMESPACE', 'default'],
  labels: ['WEFT_LABELS', ''],
  'app-host': ['WEFT_APP_HOST', '127.0.0.1'],
  'app-port': ['WEFT_APP_PORT', undefined],
  'inbound-host': ['WEFT_INBOUND_HOST', '127.0.0.1'],
  'inbound-port': ['WEFT_INBOUND_PORT', '15006'],
  'outbound-host': ['WEFT_OUTBOUND_HOST', '127.0.0.1'],
  'outbound-port': ['WEFT_OUTBOUND_PORT', '15001'],
  'admin-host': ['WEFT_ADMIN_HOST', '127.0.0.1'],
  'admin-port': ['WEFT_ADMIN_PORT', '15000'],
  upstream: ['WEFT_UPSTREAMS', ''],
  drain: ['WEFT_DRAIN', '5s'],
  // Rotation drills: renew this often instead of at half-life.
  'renew-every': ['WEFT_RENEW_EVERY', ''],
  'policy-header': ['WEFT_POLICY_HEADER', 'on'],
  'max-inbound-connections-per-address': ['WEFT_MAX_INBOUND_CONNECTIONS_PER_ADDRESS', String(DEFAULT_MAX_CONNECTIONS_PER_ADDRESS)],
} as const;

type Flag = keyof typeof FLAGS;

function port(flag: string, v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535) throw new WeftError('WEFT_CLI_USAGE', `--${flag} ${JSON.stringify(v)} is not a port number (0-65535)`);
  return n;
}

/**
 * JSON log lines to stderr, written once per event-loop turn: stderr to a file or pipe is a synchronous
 * write, and the access log has a line per request, so one write per turn instead of one per line keeps the
 * request path from waiting on the log. Lines are flushed at exit too.
 */
function batchedLog(service: string | undefined): (e: Record<string, unknown>) => void {
  let lines: string[] = [];
  const flush = () => {
    if (lines.length === 0) return;
    const text = lines.join('');
    lines = [];
    process.stderr.write(text);
  };
  process.on('exit', flush);
  // The same line as JSON.stringify({ time, component, service, ...e }), without copying every event into a
  // new object, and with the timestamp string made once per millisecond: at thousands of access-log lines a
  // second, both showed up in profiles of the request path.
  const fixed = `","component":"sidecar"${service === undefined ? '' : `,"service":${JSON.stringify(service)}`}`;
  let lastMs = 0;
  let lastTime = '';
  return (e) => {
    if (lines.length === 0) setImmediate(flush);
    const now = Date.now();
    if (now !== lastMs) {
      lastMs = now;
      lastTime = isoTime(now); // not toISOString: see sidecar/clock.ts
    }
    const rest = JSON.stringify(e);
    lines.push(`{"time":"${lastTime}${fixed}${rest.length > 2 ? `,${rest.slice(1)}` : '}'}\n`);
  };
}

function wholeAtLeastOne(flag: string, v: string, from: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new WeftError('WEFT_CLI_USAGE', `--${flag} ${JSON.stringify(v)}${from} must be a whole number of at least 1`, { flag });
  return n;
}

function onOff(flag: string, v: string): boolean {
  if (v === 'on' || v === 'off') return v === 'on';
  throw new WeftError('WEFT_CLI_USAGE', `--${flag} must be on or off, not ${JSON.stringify(v)}`);
}

function pairs(flag: string, text: string): [string, string][] {
  if (!text) return [];
  return text.split(',').map((kv) => {
    const [k, v, ...rest] = kv.split('=');
    if (!k || v === undefined || rest.length) throw new WeftError('WEFT_CLI_USAGE', `--${flag} ${JSON.stringify(kv)} must be NAME=VALUE`);
    return [k.trim(), v.trim()];
  });
}

export const sidecar: Command = {
  name: 'sidecar',
  help: `Usage: weft sidecar --control-plane URL --trust-bundle FILE (--token T | --token-file F)
                    --service S [--namespace N] [--labels version=v2] --app-port P
                    [--inbound-port 15006] [--outbound-port 15001] [--admin-port 15000]
                    [--upstream catalog=15101 ...] [-- app command ...]

Gets a certificate for the one-time token, a first config from the control plane, then serves:
  inbound  (--inbound-host:port)   mTLS from peer sidecars → the app on --app-host:--app-port
  outbound (--outbound-host:port)  an HTTP proxy for the app (Host or absolute URI names the service; h2c too)
  upstream ports (--upstream NAME=PORT, repeatable or comma-separated): one service each, in its protocol
  admin    (--admin-host:port)     /ready /live /config /certs /metrics (loopback by default)
With "-- app command", the app starts only once the sidecar is ready, with HTTP_PROXY pointing at the outbound
port; signals go to the app, and the sidecar exits with the app's status after draining.

Every flag can come from the environment: WEFT_CONTROL_PLANE, WEFT_TRUST_BUNDLE, WEFT_TOKEN, WEFT_TOKEN_FILE,
WEFT_SERVICE, WEFT_NAMESPACE, WEFT_LABELS, WEFT_APP_PORT, WEFT_INBOUND_PORT, WEFT_OUTBOUND_PORT,
WEFT_ADMIN_PORT, WEFT_UPSTREAMS, WEFT_DRAIN (and *_HOST for each address). Logs are JSON lines on stderr.
--policy-header off (WEFT_POLICY_HEADER) leaves the deciding policy out of 403 answers (it is always logged).
--renew-every 30s (WEFT_RENEW_EVERY) renews the certificate that often instead of at half-life (rotation drills).
--drain 5s (WEFT_DRAIN): how long in-flight requests may finish on SIGTERM before the rest are closed.
--max-inbound-connections-per-address 1024 (WEFT_MAX_INBOUND_CONNECTIONS_PER_ADDRESS): open connections one
remote address may hold on the inbound port; more are closed as they arrive, before any handshake.
--control-plane-identity ID (WEFT_CONTROL_PLANE_IDENTITY): the SPIFFE ID the control plane must present; by
default spiffe://<the trust bundle's trust domain>/ns/weft-system/sa/control-plane.`,
  async run(argv) {
    const split = argv.indexOf('--');
    const own = split === -1 ? argv : argv.slice(0, split);
    const command = split === -1 ? [] : argv.slice(split + 1);
    const options = Object.fromEntries(Object.keys(FLAGS).map((f) => [f, f === 'upstream' ? { type: 'string', multiple: true } : { type: 'string' }])) as Parameters<typeof parse>[2];
    const { values } = parse('sidecar', own, options);
    const get = (f: Flag): string | undefined => {
      const v = values[f];
      if (Array.isArray(v)) return v.join(',');
      return (v as string | undefined) ?? process.env[FLAGS[f][0]] ?? FLAGS[f][1];
    };
    const need = (f: Flag): string => {
      const v = get(f);
      if (!v) throw new WeftError('WEFT_CLI_USAGE', `--${f} (or ${FLAGS[f][0]}) is required; see 'weft sidecar --help'`);
      return v;
    };
    // Every missing flag at once, not one per run.
    const missing: string[] = (['control-plane', 'trust-bundle', 'service', 'app-port'] as const).filter((f) => !get(f)).map((f) => `--${f} (or ${FLAGS[f][0]})`);
    if (!get('token') && !get('token-file')) missing.splice(2, 0, `--token or --token-file (or ${FLAGS.token[0]} / ${FLAGS['token-file'][0]})`);
    if (missing.length) throw new WeftError('WEFT_CLI_USAGE', `missing ${missing.join(', ')}; see 'weft sidecar --help'`);
    const capFlag = 'max-inbound-connections-per-address';
    const maxInboundConnectionsPerAddress = wholeAtLeastOne(capFlag, get(capFlag) ?? '', values[capFlag] === undefined && process.env[FLAGS[capFlag][0]] !== undefined ? ` (from ${FLAGS[capFlag][0]})` : '');
    const bundleFile = need('trust-bundle');
    let ca: string;
    try {
      ca = readFileSync(bundleFile, 'utf8');
    } catch (err) {
      throw new WeftError('WEFT_CLI_USAGE', `--trust-bundle ${bundleFile}: cannot be read (${(err as NodeJS.ErrnoException).code})`);
    }
    const roots = parseCertificates(ca, bundleFile);
    const serverIdentity = get('control-plane-identity') ?? workloadId(spiffeIdOfCertificate(roots[0]!).trustDomain, 'weft-system', 'control-plane').uri;
    const tokenFile = get('token-file');
    const token = tokenFile ? readFileSync(tokenFile, 'utf8').trim() : need('token');
    const upstreams: UpstreamPort[] = pairs('upstream', get('upstream') ?? '').map(([service, p]) => ({ service, port: port('upstream', p) }));
    const log = batchedLog(get('service'));

    const sc = new Sidecar({
      controlPlane: { url: need('control-plane'), ca, caSource: `--trust-bundle ${bundleFile}`, serverIdentity },
      token,
      service: need('service'),
      namespace: need('namespace'),
      labels: Object.fromEntries(pairs('labels', get('labels') ?? '')),
      appHost: need('app-host'),
      appPort: port('app-port', need('app-port')),
      inboundHost: need('inbound-host'),
      inboundPort: port('inbound-port', need('inbound-port')),
      outboundHost: need('outbound-host'),
      outboundPort: port('outbound-port', need('outbound-port')),
      adminHost: need('admin-host'),
      adminPort: port('admin-port', need('admin-port')),
      upstreams,
      drainMs: parseDuration('drain', need('drain')) * 1000,
      policyHeader: onOff('policy-header', need('policy-header')),
      maxInboundConnectionsPerAddress,
      renewEveryMs: get('renew-every') ? parseDuration('renew-every', get('renew-every')!) * 1000 : undefined,
      log,
    });
    let stopping = false;
    const stop = async (code: number) => {
      if (stopping) return;
      stopping = true;
      await sc.stop();
      process.exit(code);
    };
    if (command.length === 0) {
      process.once('SIGTERM', () => void stop(0));
      process.once('SIGINT', () => void stop(0));
    }
    try {
      await sc.start();
    } catch (err) {
      // A refusal no retry can change (a bad token, a token for another service): exit, with the reason,
      // rather than sit with an open admin port that only ever says "not ready".
      await sc.stop().catch(() => {});
      const ports = Object.fromEntries([
        ...(['admin-port', 'inbound-port', 'outbound-port'] as const).map((f) => [`--${f}`, port(f, need(f))]),
        ...upstreams.map((u) => [`--upstream ${u.service}=${u.port}`, u.port]),
      ]);
      throw listenError(err, ports, 'stop what listens there, or pick another port (0 picks a free one)') ?? err;
    }
    if (command.length === 0) return new Promise<number>(() => {});
    const app = startApp(command, {
      ...callerEnv(process.env),
      HTTP_PROXY: `http://127.0.0.1:${sc.ports.outbound}`,
      http_proxy: `http://127.0.0.1:${sc.ports.outbound}`,
      // Both spellings: curl and grpc-js read only the lower-case one.
      NO_PROXY: 'localhost,127.0.0.1,::1',
      no_proxy: 'localhost,127.0.0.1,::1',
      WEFT_OUTBOUND_PORT: String(sc.ports.outbound),
      ...Object.fromEntries(Object.entries(sc.ports.upstreams).map(([name, p]) => [`WEFT_UPSTREAM_${name.replace(/[^A-Za-z0-9]/g, '_').toUpperCase()}_PORT`, String(p)])),
    });
    const code = await app.exited;
    log({ msg: 'app exited; draining and exiting with its status', status: code });
    await stop(code);
    return code;
  },
};

/** The environment the sidecar was started with, without what bin/weft set for the sidecar alone. */
export function callerEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  if (out.WEFT_SET_MALLOC_ARENA_MAX === '1') delete out.MALLOC_ARENA_MAX;
  delete out.WEFT_SET_MALLOC_ARENA_MAX;
  return out;
}
