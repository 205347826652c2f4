// Snapshots a real sidecar must refuse whole: NACKed up the stream with a reason, and the config in force (as
// /config shows it) unchanged; and what it takes from a newer control plane: fields and kinds of resource it does
// not know are ignored and logged (control planes are upgraded first), except a field in an authorization policy,
// which refuses the snapshot. Sent by a stand-in control plane, since the real one never sends them.

import test, { type ExecutionContext } from 'ava';
import { MESH_YAML } from '../helpers/control-plane.ts';
import { fullEvent, readyPorts, startFakeControlPlane, webSnapshot, type FakeControlPlane, type FakeStream } from '../helpers/fake-control-plane.ts';
import { waitFor } from '../helpers/mesh.ts';

type Body = ReturnType<typeof webSnapshot>;

/**
 * Starts a sidecar on a stand-in that sends version 100 of MESH_YAML, then, once that is ACKed, `next`'s event;
 * resolves with the sidecar's report on the second event and what /config shows after it.
 */
async function refusal(t: ExecutionContext, next: (fake: FakeControlPlane) => string, nextVersion: number) {
  const [r] = await refusals(t, [[next, nextVersion]]);
  return r!;
}

/** As refusal(), for several events in turn on one sidecar, each judged against version 100. */
async function refusals(t: ExecutionContext, events: [(fake: FakeControlPlane) => string, number][]) {
  let stream!: FakeStream;
  const fake = await startFakeControlPlane(t, {
    onStream: (s) => {
      stream = s;
      s.open();
      s.res.write(fullEvent(100, webSnapshot(fake.ca)));
    },
  });
  const sc = fake.sidecar();
  const ports = await waitFor('the sidecar to be ready', () => readyPorts(sc), 30_000);
  await waitFor('the ACK of version 100', () => stream.reports.find((r) => r['type'] === 'ack' && r['version'] === 100));
  const out = [];
  for (const [next, nextVersion] of events) {
    stream.res.write(next(fake));
    const report = await waitFor(`a report on version ${nextVersion}`, () => stream.reports.find((r) => r['type'] === 'ack' && r['version'] === nextVersion), 10_000).catch(() => null);
    const config = JSON.parse(await (await fetch(`http://127.0.0.1:${ports.admin}/config`)).text()) as { version: number; snapshot: Body };
    out.push({ report, config, logs: sc.logs() });
  }
  return out;
}

const weights = (b: Body) => b.upstreams.find((u) => u.service.name === 'catalog')!.route!.rules[0]!.destinations.map((d) => d.weight);

test('a snapshot older than one the same stream delivered (out of order) is NACKed and changes nothing', async (t) => {
  const older = MESH_YAML.replace('weight: 90', 'weight: 50').replace('weight: 10', 'weight: 50');
  const { report, config } = await refusal(t, (fake) => fullEvent(50, webSnapshot(fake.ca, older)), 50);
  t.is(config.version, 100);
  t.deepEqual(weights(config.snapshot), [90, 10]);
  t.like(report, { ok: false });
  t.regex(String(report?.['error']), /older than/);
});

/** Version `version` of MESH_YAML's snapshot for web, changed by `edit` (a deep copy). */
function edited(version: number, edit: (b: Record<string, any>) => void): (fake: FakeControlPlane) => string {
  return (fake) => {
    const body = structuredClone(webSnapshot(fake.ca)) as Record<string, any>;
    edit(body);
    return fullEvent(version, body);
  };
}
const catalogRoute = (b: Record<string, any>) => b['upstreams'].find((u: Body['upstreams'][number]) => u.service.name === 'catalog').route;

const MALFORMED: [string, (b: Record<string, any>) => void, RegExp][] = [
  ['a route to a subset the service does not have', (b) => (catalogRoute(b).rules[0].destinations[1].subset = 'v3'), /subset "v3"/],
  ['a route rule with no destination', (b) => (catalogRoute(b).rules[0].destinations = []), /destination/],
  ['a weight that is not a number', (b) => (catalogRoute(b).rules[0].destinations[0].weight = '90'), /weight/],
  ['a path match of a kind this sidecar does not know', (b) => (catalogRoute(b).rules[0].match = [{ path: { type: 'glob', value: '/x*' }, methods: [], headers: [] }]), /glob/],
];

test('malformed snapshots are NACKed with a reason and change nothing', async (t) => {
  const results = await refusals(t, MALFORMED.map(([, edit], i) => [edited(101 + i, edit), 101 + i]));
  // Every case judged, then one assertion: a list of what went wrong names each case that did.
  const wrong = MALFORMED.flatMap(([name, , reason], i) => {
    const { report, config } = results[i]!;
    const problems = [
      config.version !== 100 && `version ${config.version} in force`,
      weights(config.snapshot).join('/') !== '90/10' && `weights ${weights(config.snapshot).join('/')} in force`,
      report?.['ok'] !== false && `report ${JSON.stringify(report)}`,
      report?.['ok'] === false && !reason.test(String(report['error'])) && `reason ${JSON.stringify(report['error'])}`,
    ].filter(Boolean);
    return problems.length ? [`${name}: ${problems.join('; ')}`] : [];
  });
  t.deepEqual(wrong, []);
});

test('fields and resource kinds from a newer control plane are ignored and logged; an unknown field in an authorization policy refuses the snapshot', async (t) => {
  const newer = (fake: FakeControlPlane) => edited(101, (b) => {
    b['mesh'].rateLimit = { perSecond: 10 };
    catalogRoute(b).rules[0].rewrite = { prefix: '/v2' };
    b['upstreams'][0].tlsMode = 'DISABLE';
  })(fake).replace('"resources":{', '"resources":{"ratelimit:web.default":{"perSecond":1},');
  // A DENY whose rule has a condition this sidecar cannot evaluate: ignoring it would deny less than meant, or an
  // ALLOW's would allow more.
  const policy = edited(102, (b) => {
    b['inbound'].authorizationPolicies = [{
      name: 'no-bots', namespace: 'default', service: { name: 'web', namespace: 'default' }, action: 'DENY',
      rules: [{ from: [], to: [], when: [], userAgent: { prefix: 'bot' } }],
    }];
  });
  const [taken, refused] = await refusals(t, [[newer, 101], [policy, 102]]);
  t.like(taken!.report, { ok: true });
  t.is(taken!.config.version, 101);
  t.regex(taken!.logs, /fields this sidecar does not know.*snapshot\.mesh\.rateLimit/);
  t.regex(taken!.logs, /rules\[0\]\.rewrite/);
  t.regex(taken!.logs, /resources of kinds this sidecar does not know.*ratelimit:web\.default/);
  t.like(refused!.report, { ok: false });
  t.regex(String(refused!.report?.['error']), /unknown field "userAgent" in an authorization policy/);
  t.is(refused!.config.version, 101);
});
