// Running the real weft CLI, as a user would: through bin/weft (the pinned Node) from the repo root.

import { fileURLToPath } from 'node:url';
import { run } from './ca.ts';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const WEFT = fileURLToPath(new URL('../../bin/weft', import.meta.url));

export function weft(args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  return run(WEFT, args, { cwd: opts.cwd ?? REPO, env: opts.env });
}
