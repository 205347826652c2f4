import test from 'ava';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isWeftError } from '../../errors.ts';
import { CaStore } from '../../ca/store.ts';
import { makeCsr, tempDir, TD, WEB } from '../helpers/ca.ts';

/** Every file under dir with its bytes and mode, to prove a failed load changed nothing. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(p, `${statSync(p).mode.toString(8)}:${readFileSync(p, 'base64')}`);
    }
  };
  walk(dir);
  return out;
}

test('init writes keys 0600 in a 0700 folder, and the CA signs and journals', async (t) => {
  const dir = join(tempDir(), 'ca');
  const store = await CaStore.init(dir, { trustDomain: TD });
  t.is(statSync(dir).mode & 0o777, 0o700);
  const adir = join(dir, 'authorities', store.active.record.id);
  t.is(statSync(join(adir, 'intermediate.key')).mode & 0o777, 0o600);
  t.is(statSync(join(adir, 'root.key')).mode & 0o777, 0o600);
  t.is(statSync(join(adir, 'root.crt')).mode & 0o777, 0o644);
  // No temp files left behind by the atomic writes.
  t.deepEqual([...snapshot(dir).keys()].filter((p) => p.endsWith('.tmp')), []);

  const ca = CaStore.open(dir).authority();
  const { pem } = await makeCsr();
  const a = ca.sign(pem, WEB);
  const b = ca.sign(pem, WEB, { ttlSeconds: 600 });
  const journal = readFileSync(join(dir, 'journal.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.deepEqual(journal.map((r) => [r.serial, r.identity, r.notBefore, r.notAfter]), [
    [a.serial, WEB, a.notBefore.toISOString(), a.notAfter.toISOString()],
    [b.serial, WEB, b.notBefore.toISOString(), b.notAfter.toISOString()],
  ]);
  t.is(statSync(join(dir, 'journal.jsonl')).mode & 0o777, 0o600);
  // The journal only grows.
  ca.sign(pem, WEB);
  t.is(readFileSync(join(dir, 'journal.jsonl'), 'utf8').trim().split('\n').length, 3);
});

test('init refuses to overwrite an existing CA unless forced', async (t) => {
  const dir = join(tempDir(), 'ca');
  const first = await CaStore.init(dir, { trustDomain: TD });
  const before = snapshot(dir);
  const err = await t.throwsAsync(CaStore.init(dir, { trustDomain: TD }));
  t.true(isWeftError(err, 'WEFT_CA_STORE_EXISTS'));
  t.regex(err!.message, /already holds a CA; pass --force/);
  t.deepEqual(snapshot(dir), before);
  const second = await CaStore.init(dir, { trustDomain: TD, force: true });
  t.not(second.active.root.fingerprint256, first.active.root.fingerprint256);
  t.false(existsSync(join(dir, 'authorities', first.active.record.id)));
});

test('opening a missing store says how to create one', (t) => {
  const err = t.throws(() => CaStore.open(join(tempDir(), 'nothing')));
  t.true(isWeftError(err, 'WEFT_CA_STORE_MISSING'));
  t.regex(err!.message, /weft ca init --trust-domain/);
});

// Each corruption: what to do to the store, the code, and the text that names the file.
const corruptions: [string, (dir: string, id: string) => void, string, RegExp][] = [
  ['ca.json is not JSON', (d) => writeFileSync(join(d, 'ca.json'), '{"version":1,'), 'WEFT_CA_STORE_CORRUPT', /ca\.json: not readable JSON/],
  ['ca.json has no active authority', (d) => {
    const s = JSON.parse(readFileSync(join(d, 'ca.json'), 'utf8'));
    s.authorities[0].state = 'retired';
    writeFileSync(join(d, 'ca.json'), JSON.stringify(s));
  }, 'WEFT_CA_STORE_CORRUPT', /0 active authorities/],
  ['ca.json names a bad state', (d) => {
    const s = JSON.parse(readFileSync(join(d, 'ca.json'), 'utf8'));
    s.authorities[0].state = 'sleeping';
    writeFileSync(join(d, 'ca.json'), JSON.stringify(s));
  }, 'WEFT_CA_STORE_CORRUPT', /authorities\[0\]\.state must be one of/],
  ['the intermediate key is garbage', (d, id) => writeFileSync(join(d, 'authorities', id, 'intermediate.key'), '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', { mode: 0o600 }), 'WEFT_CA_PEM_MALFORMED', /intermediate\.key: not a readable private key/],
  ['the intermediate certificate is truncated', (d, id) => {
    const p = join(d, 'authorities', id, 'intermediate.crt');
    writeFileSync(p, readFileSync(p, 'utf8').slice(0, 200));
  }, 'WEFT_CA_PEM_MALFORMED', /intermediate\.crt: no PEM CERTIFICATE block/],
  ['the key belongs to another certificate', (d, id) => {
    writeFileSync(join(d, 'authorities', id, 'intermediate.key'), readFileSync(join(d, 'authorities', id, 'root.key')), { mode: 0o600 });
  }, 'WEFT_CA_KEY_MISMATCH', /intermediate\.key is not the private key of the certificate in .*intermediate\.crt/],
  ['the intermediate does not chain to the root', (d, id) => {
    // The root replaced by the intermediate itself: a CA certificate that did not sign it.
    writeFileSync(join(d, 'authorities', id, 'root.crt'), readFileSync(join(d, 'authorities', id, 'intermediate.crt')));
  }, 'WEFT_CA_STORE_CORRUPT', /intermediate\.crt: .*(not issued by|does not chain)/],
  ['a private key readable by others', (d, id) => chmodSync(join(d, 'authorities', id, 'intermediate.key'), 0o644), 'WEFT_CA_STORE_CORRUPT', /readable by others \(mode 644\).*chmod 600/],
  ['the root file is missing', (d, id) => writeFileSync(join(d, 'authorities', id, 'root.crt'), ''), 'WEFT_CA_PEM_MALFORMED', /root\.crt: no PEM/],
];

for (const [name, corrupt, code, message] of corruptions) {
  test(`loading fails clearly and changes nothing when ${name}`, async (t) => {
    const dir = join(tempDir(), 'ca');
    const store = await CaStore.init(dir, { trustDomain: TD });
    corrupt(dir, store.active.record.id);
    const before = snapshot(dir);
    const err = t.throws(() => CaStore.open(dir));
    t.true(isWeftError(err, code as never), `${err?.message}`);
    t.regex(err!.message, message);
    t.deepEqual(snapshot(dir), before);
  });
}

test('a torn last journal line is tolerated, a corrupt middle line is reported with its line number', async (t) => {
  const dir = join(tempDir(), 'ca');
  const store = await CaStore.init(dir, { trustDomain: TD });
  const ca = store.authority();
  const { pem } = await makeCsr();
  ca.sign(pem, WEB);
  writeFileSync(join(dir, 'journal.jsonl'), readFileSync(join(dir, 'journal.jsonl'), 'utf8') + '{"serial":"AB');
  t.is(store.journal.read().length, 1);
  writeFileSync(join(dir, 'journal.jsonl'), 'garbage\n' + readFileSync(join(dir, 'journal.jsonl'), 'utf8'));
  const err = t.throws(() => store.journal.read());
  t.regex(err!.message, /journal\.jsonl:1: journal line is not JSON/);
});
