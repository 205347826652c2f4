// Command-line parsing shared by every weft command: strict flags, durations, and the --json switch.

import type { ParseArgsConfig } from 'node:util';
import { suggest } from '../control-plane/config/suggest.ts';
import { WeftError } from '../errors.ts';

// Not `import { parseArgs } from 'node:util'`: an ES import of a built-in reads every export, and util's lazy
// ones load worker_threads, assert and more (~1 MB in every sidecar). See ../sidecar/http/node-http.ts.
const { parseArgs } = process.getBuiltinModule('node:util');

export type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  readonly values: Record<string, string | boolean | string[] | undefined>;
  readonly positionals: string[];
}

/** Parses `argv` strictly: an unknown or malformed flag is an error naming the command and the flag. */
export function parse(command: string, argv: readonly string[], options: Options, allowPositionals = false): Parsed {
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options: { ...options, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true });
    return { values: values as Parsed['values'], positionals };
  } catch (err) {
    throw new WeftError('WEFT_CLI_USAGE', `weft ${command}: ${parseErrorText(err as NodeJS.ErrnoException, options)}; see 'weft ${command} --help'`, { command }, { cause: err });
  }
}

/**
 * node's text, except for an unknown flag: node's advice there (how to pass a positional argument that starts
 * with '-') misleads whoever misspelt a flag, so it names the flag and the closest known one instead.
 */
function parseErrorText(err: NodeJS.ErrnoException, options: Options): string {
  const flag = err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'(-[^']*)'/.exec(err.message)?.[1] : undefined;
  if (!flag) return err.message;
  const near = flag.startsWith('--') ? suggest(flag.slice(2), [...Object.keys(options), 'json', 'help']) : null;
  return `unknown flag ${flag}${near ? ` (did you mean --${near}?)` : ''}`;
}

export function required(command: string, values: Parsed['values'], name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new WeftError('WEFT_CLI_USAGE', `weft ${command}: ${name === 'file' ? '-f/--file' : `--${name}`} is required; see 'weft ${command} --help'`, { command, flag: name });
  return v;
}

export function optional(values: Parsed['values'], name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/**
 * A listening address: HOST:PORT, [IPv6]:PORT, or :PORT for every interface; port 0 lets the system pick one.
 * `env`: the environment variable the text came from, named in the error when there was no flag; `example`: a
 * good value, for the error.
 */
export function listenAddress(flag: string, text: string, o: { env?: string; example: string }): { host: string; port: number } {
  const m = /^(.*):(\d{1,5})$/.exec(text);
  if (!m || Number(m[2]) > 65535) {
    throw new WeftError('WEFT_CLI_USAGE', `--${flag} ${JSON.stringify(text)}${o.env ? ` (from ${o.env})` : ''} must be HOST:PORT with a port from 0 to 65535 (0 picks a free one), such as ${o.example}`, { flag });
  }
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** "90s", "5m", "1h", "1h30m", or a bare number of seconds. */
export function parseDuration(flag: string, text: string): number {
  if (/^\d+$/.test(text)) return Number(text);
  const parts = [...text.matchAll(/(\d+)([smhd])/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) {
    throw new WeftError('WEFT_CLI_USAGE', `--${flag} ${JSON.stringify(text)} is not a duration; write it like 90s, 5m, 1h or 1h30m`, { flag });
  }
  return parts.reduce((sum, p) => sum + Number(p[1]) * UNITS[p[2]!]!, 0);
}
