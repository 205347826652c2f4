// weft: the one command line for the mesh. Routes `weft <command> [<subcommand>]` to its handler.

import { suggest } from '../control-plane/config/suggest.ts';
import { WeftError } from '../errors.ts';
import type { Command } from './command.ts';
import { output, printError } from './output.ts';

// Not an ES import: it would read fs.promises, which loads node:readline and more (see sidecar/http/node-http.ts).
const { readFileSync } = process.getBuiltinModule('node:fs');

/**
 * Every command, loaded only when run: a sidecar process must not carry the control plane's config compiler,
 * the CA's certificate library or the YAML parser (each costs memory on every workload).
 */
const COMMANDS: readonly { name: string; summary: string; load: () => Promise<Command> }[] = [
  { name: 'up', summary: 'run a whole mesh on loopback: control plane, a sidecar and app per workload, an ingress', load: async () => (await import('./commands/up.ts')).up },
  { name: 'control-plane', summary: 'run the control plane: CA, identity API, config push to sidecars', load: async () => (await import('./commands/mesh.ts')).controlPlane },
  { name: 'sidecar', summary: 'run the sidecar proxy for one workload (mTLS, policy, routing), optionally with the app', load: async () => (await import('./commands/sidecar.ts')).sidecar },
  { name: 'apply', summary: 'send a mesh config to the control plane; rejected whole if anything is wrong', load: async () => (await import('./commands/mesh.ts')).apply },
  { name: 'status', summary: 'list every connected sidecar: identity, labels, config version and ACK state, certificate expiry, ready', load: async () => (await import('./commands/mesh.ts')).status },
  { name: 'top', summary: 'live requests/s, success rate and p99 latency per service and subset, from the sidecars', load: async () => (await import('./commands/top.ts')).top },
  { name: 'token', summary: 'issue a one-time bootstrap token for a sidecar of a service', load: async () => (await import('./commands/mesh.ts')).token },
  { name: 'revoke', summary: 'revoke a certificate by serial, or every valid certificate of an identity', load: async () => (await import('./commands/mesh.ts')).revoke },
  { name: 'canary', summary: 'shift a live traffic split: give a subset a percentage of its service', load: async () => (await import('./commands/route.ts')).canary },
  { name: 'route show', summary: "show a service's routing: rules, splits, timeouts, retries", load: async () => (await import('./commands/route.ts')).routeShow },
  { name: 'traces', summary: 'receive OTLP traces locally and print each one as a tree of spans', load: async () => (await import('./commands/traces.ts')).traces },
  { name: 'policy check', summary: 'explain what the mesh would decide for a request: allow or deny, and which rule', load: async () => (await import('./commands/policy.ts')).policyCheck },
  { name: 'validate', summary: 'check a mesh config file without applying it; every problem is listed with file:line:col', load: async () => (await import('./commands/validate.ts')).validate },
  { name: 'schema', summary: 'print the JSON Schema of mesh config documents (for editors)', load: async () => (await import('./commands/schema.ts')).schema },
  { name: 'ca init', summary: 'create the certificate authority (a new root and intermediate, or your own plug-in intermediate)', load: async () => (await import('./commands/ca.ts')).caInit },
  { name: 'ca rotate', summary: 'rotate the root: prepare, activate, finish (or status)', load: async () => (await import('./commands/ca.ts')).caRotate },
  { name: 'ca issue', summary: 'issue a certificate for an identity by hand (operator SVIDs, tests)', load: async () => (await import('./commands/ca.ts')).caIssue },
  { name: 'certs inspect', summary: 'show a certificate chain (identity, serial, validity, issuers) and verify it against a bundle', load: async () => (await import('./commands/certs.ts')).certsInspect },
];

function version(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `weft ${version()}: a service mesh with SPIFFE identities, mutual TLS, policy, canaries and tracing.

Usage: weft <command> [flags]        (from a clone: npm run weft -- <command> [flags])

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Every command takes --help for its flags and --json for machine-readable output.
Exit status: 0 on success, 1 on an error, 2 on a usage mistake.`;
}

export async function main(argv: readonly string[]): Promise<number> {
  const json = argv.includes('--json');
  try {
    if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
      process.stdout.write(usage() + '\n');
      return 0;
    }
    if (argv[0] === '--version') {
      process.stdout.write(version() + '\n');
      return 0;
    }
    // Longest match first, so "ca init" wins over a hypothetical "ca".
    const command = [...COMMANDS].sort((a, b) => b.name.length - a.name.length).find((c) => {
      const words = c.name.split(' ');
      return words.every((w, i) => argv[i] === w);
    });
    if (!command) {
      const sameFirst = COMMANDS.filter((c) => c.name.split(' ')[0] === argv[0]).map((c) => c.name);
      const started = COMMANDS.filter((c) => c.name.startsWith(argv[0] ?? '')).map((c) => c.name);
      // A misspelt first word ("stauts") gets the command it is closest to.
      const guess = suggest(argv[0] ?? '', [...new Set(COMMANDS.map((c) => c.name.split(' ')[0]!))]);
      const near = sameFirst.length ? sameFirst : started.length ? started : COMMANDS.filter((c) => c.name.split(' ')[0] === guess).map((c) => c.name);
      throw new WeftError('WEFT_CLI_USAGE', `unknown command ${JSON.stringify(argv.slice(0, 2).join(' '))}${near.length ? `; did you mean: ${near.join(', ')}` : ''}; see 'weft --help'`);
    }
    const rest = argv.slice(command.name.split(' ').length);
    const own = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
    if (own.includes('--help') || own.includes('-h')) {
      process.stdout.write((await command.load()).help + '\n');
      return 0;
    }
    return (await (await command.load()).run(rest, output(json))) ?? 0;
  } catch (err) {
    return printError(err, json);
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
