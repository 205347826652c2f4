// A stand-in control plane for tests of how a real sidecar process copes with one that misbehaves: it holds the
// control plane's identity (a certificate for its SPIFFE ID from a test CA), issues workload certificates for
// any token, and lets the test write the snapshot stream by hand. Snapshots are built by the real builder from
// mesh YAML, so their shape is the real control plane's.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPair, privateKeyToPem } from '../../ca/keys.ts';
import { parseMeshConfigOrThrow } from '../../control-plane/config/index.ts';
import { sseEvent } from '../../control-plane/push/sse.ts';
import { buildSnapshot } from '../../control-plane/snapshot/build.ts';
import { toResources } from '../../control-plane/snapshot/resources.ts';
import type { SnapshotBody } from '../../control-plane/snapshot/types.ts';
import { makeCa, makeCsr, tempDir, TD, writeTemp, type TestCa } from './ca.ts';
import { MESH_YAML } from './control-plane.ts';
import { run, type Proc } from './mesh.ts';

const https = process.getBuiltinModule('node:https');

export const CP_ID = `spiffe://${TD}/ns/weft-system/sa/control-plane`;

/** One snapshot stream a sidecar opened: its response to write to, and the report lines it sent up. */
export interface FakeStream {
  readonly res: ServerResponse;
  readonly reports: Record<string, unknown>[];
  /** writes the stream's head as the real control plane does (keepalive header included unless null) */
  open(keepaliveMs?: number | null): void;
}

export interface FakeControlPlane {
  readonly url: string;
  readonly dir: string;
  readonly bundleFile: string;
  readonly ca: TestCa;
  readonly streams: FakeStream[];
  /** renewal requests seen so far */
  renewals: number;
  /** report lines (ACKs, NACKs, heartbeats) from every stream, in order */
  reports(): Record<string, unknown>[];
  /** starts a real sidecar process for `web` against this control plane */
  sidecar(opts?: { env?: NodeJS.ProcessEnv; command?: string[]; appPort?: number }): Proc;
}

export interface FakeOptions {
  /** answers a stream request; default: open it and send the snapshot of MESH_YAML at version 100 */
  readonly onStream?: (s: FakeStream, n: number) => void;
  /** answers the n-th renewal (1-based); return false to refuse it with a 503 */
  readonly renew?: (n: number) => boolean;
}

/** The body the real builder makes for `web` from `yaml`. */
export function webSnapshot(ca: TestCa, yaml = MESH_YAML): SnapshotBody {
  return buildSnapshot({ config: parseMeshConfigOrThrow(yaml, 'mesh.yaml'), endpoints: () => [], trustBundle: ca.bundle.toPem(), revokedSerials: [] }, 'web', 'default');
}

/** A full snapshot event as the pusher writes it. */
export function fullEvent(version: number, body: SnapshotBody | Record<string, unknown>): string {
  const resources = Object.fromEntries(toResources(body as SnapshotBody));
  return sseEvent('snapshot', JSON.stringify({ version, full: true, resources, removed: [] }), version);
}

export async function startFakeControlPlane(t: { teardown(fn: () => unknown): void }, opts: FakeOptions = {}): Promise<FakeControlPlane> {
  const ca = await makeCa();
  const keys = generateKeyPair();
  const own = ca.ca.sign((await makeCsr({ keys })).pem, CP_ID);
  const dir = tempDir('weft-fake-cp-');
  const bundleFile = writeTemp(dir, 'bundle.pem', ca.bundle.toPem());
  const streams: FakeStream[] = [];
  const procs: Proc[] = [];
  const issue = (csr: string) => {
    const svid = ca.ca.sign(csr, `spiffe://${TD}/ns/default/sa/web`);
    return { identity: svid.spiffeId.uri, serial: svid.serial, notBefore: svid.notBefore.toISOString(), notAfter: svid.notAfter.toISOString(), chain: svid.chainPem, bundle: svid.bundlePem };
  };
  const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const readAll = async (req: IncomingMessage) => {
    let text = '';
    for await (const c of req) text += c;
    return JSON.parse(text) as { csr: string };
  };
  const server = https.createServer({ key: privateKeyToPem(keys.privateKey), cert: own.chainPem, ca: ca.bundle.toPem(), requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, (req, res) => {
    if (req.url === '/v1/identity/bootstrap') return void readAll(req).then((b) => json(res, 200, issue(b.csr)));
    if (req.url === '/v1/identity/renew') {
      fake.renewals++;
      const n = fake.renewals;
      return void readAll(req).then((b) => ((opts.renew?.(n) ?? true) ? json(res, 200, issue(b.csr)) : json(res, 503, { error: { code: 'WEFT_API_UNAVAILABLE', message: 'not now' } })));
    }
    if (req.url !== '/v1/sidecars/stream') return void json(res, 404, { error: { code: 'WEFT_API_NOT_FOUND', message: req.url } });
    const reports: Record<string, unknown>[] = [];
    let pending = '';
    req.setEncoding('utf8').on('data', (d: string) => {
      pending += d;
      for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n')) {
        reports.push(JSON.parse(pending.slice(0, nl)) as Record<string, unknown>);
        pending = pending.slice(nl + 1);
      }
    });
    const s: FakeStream = {
      res,
      reports,
      open: (keepaliveMs = 1000) => {
        res.writeHead(200, { 'content-type': 'text/event-stream', ...(keepaliveMs === null ? {} : { 'weft-keepalive-ms': String(keepaliveMs) }) });
        res.write(sseEvent('registered', '{}'));
      },
    };
    streams.push(s);
    (opts.onStream ?? ((x) => (x.open(), x.res.write(fullEvent(100, webSnapshot(ca))))))(s, streams.length);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.teardown(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGKILL')));
    server.closeAllConnections();
    server.close();
  });
  const fake: FakeControlPlane = {
    url,
    dir,
    bundleFile,
    ca,
    streams,
    renewals: 0,
    reports: () => streams.flatMap((s) => s.reports),
    sidecar: (o = {}) => {
      const p = run([
        'sidecar', '--control-plane', url, '--trust-bundle', bundleFile, '--token', 'any', '--service', 'web', '--app-port', String(o.appPort ?? 1),
        '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0', ...(o.command ? ['--', ...o.command] : []),
      ], o.env);
      procs.push(p);
      return p;
    },
  };
  return fake;
}

/** The ports from a sidecar's "sidecar ready" log line, once it is there. */
export function readyPorts(p: Proc): { inbound: number; outbound: number; admin: number } | undefined {
  const line = p.logs().split('\n').find((l) => l.includes('"msg":"sidecar ready"'));
  return line ? (JSON.parse(line) as { inbound: number; outbound: number; admin: number }) : undefined;
}
