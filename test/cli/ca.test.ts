import test from 'ava';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, tempDir } from '../helpers/ca.ts';
import { REPO, weft } from '../helpers/cli.ts';

test('weft --help lists the commands; an unknown command is a usage error (exit 2)', async (t) => {
  const help = await weft(['--help']);
  t.is(help.code, 0);
  for (const c of ['ca init', 'ca rotate', 'ca issue', 'certs inspect']) t.true(help.stdout.includes(c), c);
  const bad = await weft(['ca', 'destroy']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /unknown command "ca destroy"; did you mean: ca init, ca rotate, ca issue/);
  const flag = await weft(['ca', 'init', '--trust-domian', 'x']);
  t.is(flag.code, 2);
  t.regex(flag.stderr, /weft ca init: unknown flag --trust-domian \(did you mean --trust-domain\?\)/);
});

test('npm run weft runs the CLI under the pinned Node 24', async (t) => {
  const r = await run('npm', ['run', '--silent', 'weft', '--', '--version'], { cwd: REPO });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^\d+\.\d+\.\d+/);
  const node = await run('npm', ['exec', '--', 'node', '--version'], { cwd: REPO });
  t.regex(node.stdout, /^v24\./);
});

test('ca init, ca issue and certs inspect, end to end, with openssl agreeing', async (t) => {
  const dir = tempDir();
  const ca = join(dir, 'ca');
  const init = await weft(['ca', 'init', '--trust-domain', 'shop.example', '--dir', ca, '--json']);
  t.is(init.code, 0, init.stderr);
  t.is(JSON.parse(init.stdout).trustDomain, 'shop.example');
  const again = await weft(['ca', 'init', '--trust-domain', 'shop.example', '--dir', ca]);
  t.is(again.code, 1);
  t.regex(again.stderr, /already holds a CA; pass --force.*\[WEFT_CA_STORE_EXISTS\]/);

  const out = join(dir, 'web');
  const issue = await weft(['ca', 'issue', '--dir', ca, '--id', 'spiffe://shop.example/ns/default/sa/web', '--ttl', '30m', '--out', out, '--json']);
  t.is(issue.code, 0, issue.stderr);
  const issued = JSON.parse(issue.stdout);
  t.is(Date.parse(issued.notAfter) - Date.parse(issued.notBefore), 31 * 60_000);
  t.is(statSync(join(out, 'key.pem')).mode & 0o777, 0o600);

  const inspect = await weft(['certs', 'inspect', join(out, 'cert.pem'), '--bundle', join(ca, 'bundle.pem')]);
  t.is(inspect.code, 0, inspect.stderr);
  t.regex(inspect.stdout, /certificate: spiffe:\/\/shop\.example\/ns\/default\/sa\/web/);
  t.regex(inspect.stdout, new RegExp(`serial     ${issued.serial}`));
  t.regex(inspect.stdout, /verifies against .*: yes/);
  const later = await weft(['certs', 'inspect', join(out, 'cert.pem'), '--bundle', join(ca, 'bundle.pem'), '--at', '2099-01-01T00:00:00Z']);
  t.is(later.code, 1);
  t.regex(later.stdout, /verifies against .*: NO: certificate .* is expired at/);

  const ossl = await run('openssl', ['verify', '-CAfile', join(ca, 'bundle.pem'), '-untrusted', join(out, 'cert.pem'), join(out, 'cert.pem')]);
  t.is(ossl.code, 0, ossl.stderr);
  // The key and the certificate are a pair.
  const modCert = await run('openssl', ['x509', '-in', join(out, 'cert.pem'), '-noout', '-pubkey']);
  const modKey = await run('openssl', ['pkey', '-in', join(out, 'key.pem'), '-pubout']);
  t.is(modCert.stdout, modKey.stdout);

  const badTtl = await weft(['ca', 'issue', '--dir', ca, '--id', 'spiffe://shop.example/ns/default/sa/web', '--ttl', '2d', '--out', out]);
  t.is(badTtl.code, 1);
  t.regex(badTtl.stderr, /certificate lifetime 172800s is out of bounds.*\[WEFT_CA_TTL_OUT_OF_BOUNDS\]/);
  const badId = await weft(['ca', 'issue', '--dir', ca, '--id', 'spiffe://shop.example/ns//sa/web', '--out', out]);
  t.is(badId.code, 1);
  t.regex(badId.stderr, /invalid SPIFFE ID .*empty segment/);
});

test('ca rotate walks prepare, activate and refuses an early finish, all from the CLI', async (t) => {
  const ca = join(tempDir(), 'ca');
  t.is((await weft(['ca', 'init', '--trust-domain', 'shop.example', '--dir', ca])).code, 0);
  const noStep = await weft(['ca', 'rotate', '--dir', ca]);
  t.is(noStep.code, 2);
  const early = await weft(['ca', 'rotate', 'activate', '--dir', ca]);
  t.is(early.code, 1);
  t.regex(early.stderr, /no prepared authority; run 'weft ca rotate prepare' first/);
  const prep = await weft(['ca', 'rotate', 'prepare', '--dir', ca]);
  t.is(prep.code, 0, prep.stderr);
  t.regex(prep.stdout, /trust bundle: .* \(2 root\(s\)\)/);
  t.regex(prep.stdout, /next: push the new bundle/);
  const act = await weft(['ca', 'rotate', 'activate', '--dir', ca, '--json']);
  t.is(act.code, 0, act.stderr);
  t.deepEqual(JSON.parse(act.stdout).authorities.map((a: { state: string }) => a.state), ['retired', 'active']);
  const fin = await weft(['ca', 'rotate', 'finish', '--dir', ca]);
  t.is(fin.code, 1);
  t.regex(fin.stderr, /cannot finish a rotation: certificates signed by authority \w+ are valid until/);
});

/** An operator's offline root and an intermediate for the mesh, made with openssl as an operator would. */
async function offlineCa(dir: string, opts: { intermediateIsCa?: boolean } = {}) {
  const sh = async (args: string[]) => {
    const r = await run('openssl', args, { cwd: dir });
    if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  };
  await sh(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'root.key']);
  await sh(['req', '-x509', '-new', '-key', 'root.key', '-subj', '/O=Corp/CN=Corp Offline Root', '-days', '3650', '-out', 'root.pem',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await sh(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'inter.key']);
  await sh(['req', '-new', '-key', 'inter.key', '-subj', '/O=Corp/CN=Corp Mesh Intermediate', '-out', 'inter.csr']);
  writeFileSync(join(dir, 'ext.cnf'), opts.intermediateIsCa === false
    ? 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n'
    : 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
  await sh(['x509', '-req', '-in', 'inter.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-CAcreateserial', '-days', '365', '-extfile', 'ext.cnf', '-out', 'inter.pem']);
  return { cert: join(dir, 'inter.pem'), key: join(dir, 'inter.key'), root: join(dir, 'root.pem'), rootKey: join(dir, 'root.key') };
}

test('a plug-in CA: an intermediate from an offline root signs, and the chain verifies the same way', async (t) => {
  const dir = tempDir();
  const p = await offlineCa(dir);
  const ca = join(dir, 'ca');
  const init = await weft(['ca', 'init', '--trust-domain', 'corp.example', '--dir', ca, '--plugin-cert', p.cert, '--plugin-key', p.key, '--plugin-root', p.root]);
  t.is(init.code, 0, init.stderr);
  t.regex(init.stdout, /plug-in root .*Corp Offline Root/);
  t.is(readFileSync(join(ca, 'bundle.pem'), 'utf8'), readFileSync(p.root, 'utf8'));
  const out = join(dir, 'svc');
  t.is((await weft(['ca', 'issue', '--dir', ca, '--id', 'spiffe://corp.example/ns/prod/sa/api', '--out', out])).code, 0);
  const ossl = await run('openssl', ['verify', '-x509_strict', '-CAfile', p.root, '-untrusted', join(out, 'cert.pem'), join(out, 'cert.pem')]);
  t.is(ossl.code, 0, ossl.stderr);
  const inspect = await weft(['certs', 'inspect', join(out, 'cert.pem'), '--bundle', p.root]);
  t.regex(inspect.stdout, /verifies against .*: yes, up to O=Corp, CN=Corp Offline Root/);
});

test('a plug-in CA is refused, with nothing written, when the key or chain is wrong', async (t) => {
  const dir = tempDir();
  const p = await offlineCa(dir);
  const other = await offlineCa(tempDir());
  const leafDir = tempDir();
  const leaf = await offlineCa(leafDir, { intermediateIsCa: false });
  const cases: [string[], RegExp][] = [
    [['--plugin-cert', p.cert, '--plugin-key', p.rootKey, '--plugin-root', p.root], /root\.key is not the private key of the certificate in .*inter\.pem.*\[WEFT_CA_KEY_MISMATCH\]/],
    [['--plugin-cert', p.cert, '--plugin-key', p.key, '--plugin-root', other.root], /does not chain to any root in the trust bundle.*\[WEFT_CA_CHAIN_INVALID\]/],
    [['--plugin-cert', leaf.cert, '--plugin-key', leaf.key, '--plugin-root', leaf.root], /is not a CA certificate \(basicConstraints CA:TRUE is required\)/],
    [['--plugin-cert', p.cert, '--plugin-key', p.key], /needs all of --plugin-cert, --plugin-key and --plugin-root/],
    [['--plugin-cert', join(dir, 'missing.pem'), '--plugin-key', p.key, '--plugin-root', p.root], /missing\.pem: cannot be read \(ENOENT\)/],
  ];
  for (const [flags, message] of cases) {
    const ca = join(tempDir(), 'ca');
    const r = await weft(['ca', 'init', '--trust-domain', 'corp.example', '--dir', ca, ...flags]);
    t.not(r.code, 0);
    t.regex(r.stderr, message);
    t.throws(() => statSync(join(ca, 'ca.json')));
  }
});
