// cli/args.ts through the real CLI: how a mistyped flag is reported.

import test from 'ava';
import { weft } from '../helpers/cli.ts';

test('a misspelt flag is named with the closest known one, without node\'s advice on positional arguments', async (t) => {
  const r = await weft(['canary', 'catalog', '--subset', 'v2', '--wieght', '50']);
  t.is(r.code, 2);
  t.regex(r.stderr, /^weft: weft canary: unknown flag --wieght \(did you mean --weight\?\); see 'weft canary --help' \[WEFT_CLI_USAGE\]$/m);
  t.notRegex(r.stderr, /positional/);
  const far = await weft(['top', '--bogus-flag']);
  t.is(far.code, 2);
  t.regex(far.stderr, /^weft: weft top: unknown flag --bogus-flag; see 'weft top --help' \[WEFT_CLI_USAGE\]$/m);
  const short = await weft(['status', '-x']);
  t.is(short.code, 2);
  t.regex(short.stderr, /weft status: unknown flag -x; see 'weft status --help'/);
});
