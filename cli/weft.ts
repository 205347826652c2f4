// weft: the one command line for the mesh. Routes `weft <command> [<subcommand>]` to its handler.

import { readFileSync } from 'node:fs';
import { WeftError } from '../errors.ts';
import { caInit, caIssue, caRotate } from './commands/ca.ts';
import { certsInspect } from './commands/certs.ts';
import { schema } from './commands/schema.ts';
import { validate } from './commands/validate.ts';
import { apply, controlPlane, revoke, status, token } from './commands/mesh.ts';
import { sidecar } from './commands/sidecar.ts';
import type { Command } from './command.ts';
import { output, printError } from './output.ts';

const COMMANDS: readonly Command[] = [controlPlane, sidecar, apply, status, token, revoke, caInit, caRotate, caIssue, certsInspect, validate, schema];

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
      const near = COMMANDS.filter((c) => c.name.startsWith(argv[0] ?? '')).map((c) => c.name);
      throw new WeftError('WEFT_CLI_USAGE', `unknown command ${JSON.stringify(argv.slice(0, 2).join(' '))}${near.length ? `; did you mean: ${near.join(', ')}` : ''}; see 'weft --help'`);
    }
    const rest = argv.slice(command.name.split(' ').length);
    const own = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
    if (own.includes('--help') || own.includes('-h')) {
      process.stdout.write(command.help + '\n');
      return 0;
    }
    return (await command.run(rest, output(json))) ?? 0;
  } catch (err) {
    return printError(err, json);
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
