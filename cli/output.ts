// How commands speak: human text by default, one JSON document with --json, errors on stderr.

import { WeftError } from '../errors.ts';

export interface Output {
  readonly json: boolean;
  /** prints `data` as JSON, or `text()` for humans */
  result(data: unknown, text: () => string): void;
}

export function output(json: boolean): Output {
  return {
    json,
    result(data, text) {
      process.stdout.write(json ? JSON.stringify(data, null, 2) + '\n' : text().replace(/\n?$/, '\n'));
    },
  };
}

export function printError(err: unknown, json: boolean): number {
  if (err instanceof WeftError) {
    if (json) process.stderr.write(JSON.stringify({ error: err.toJSON() }) + '\n');
    else {
      // The code goes on the message's first line: after a list (a config's errors) it would read as the last item's.
      const nl = err.message.indexOf('\n');
      process.stderr.write(nl === -1 ? `weft: ${err.message} [${err.code}]\n` : `weft: ${err.message.slice(0, nl)} [${err.code}]${err.message.slice(nl)}\n`);
    }
    return err.code === 'WEFT_CLI_USAGE' ? 2 : 1;
  }
  process.stderr.write(`weft: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
  return 1;
}
