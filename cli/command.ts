// The shape of a weft command, so the entry point can list, route and document them in one place.

import type { Output } from './output.ts';

export interface Command {
  /** words after `weft`, e.g. "ca init" */
  readonly name: string;
  /** full help text: usage line, flags, an example */
  readonly help: string;
  run(argv: readonly string[], out: Output): Promise<number | void> | number | void;
}

export const DEFAULT_CA_DIR = process.env.WEFT_CA_DIR ?? '.weft/ca';
