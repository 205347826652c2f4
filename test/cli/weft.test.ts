// cli/weft.ts: how a mistyped command is reported.

import test from 'ava';
import { weft } from '../helpers/cli.ts';

test('a misspelt command is answered with the command it is closest to', async (t) => {
  const r = await weft(['stauts']);
  t.is(r.code, 2);
  t.regex(r.stderr, /unknown command "stauts"; did you mean: status; see 'weft --help' \[WEFT_CLI_USAGE\]/);
  const two = await weft(['polcy', 'check']);
  t.regex(two.stderr, /unknown command "polcy check"; did you mean: policy check;/);
  const none = await weft(['xyzzy']);
  t.regex(none.stderr, /unknown command "xyzzy"; see 'weft --help'/);
});
