// weft schema: prints the JSON Schema of a mesh config document, for editors to validate mesh.yaml as it is typed.

import { jsonSchema } from '../../control-plane/config/index.ts';
import { parse } from '../args.ts';
import type { Command } from '../command.ts';

export const schema: Command = {
  name: 'schema',
  help: `Usage: weft schema

Prints the JSON Schema (draft-07) of one mesh config document, chosen by its kind. Save it and point your editor
at it, e.g. with the YAML extension in VS Code:
  weft schema > .weft/mesh.schema.json
  # first line of mesh.yaml:  # yaml-language-server: $schema=.weft/mesh.schema.json

Output is always JSON.`,
  run(argv) {
    parse('schema', argv, {});
    process.stdout.write(`${JSON.stringify(jsonSchema(), null, 2)}\n`);
    return 0;
  },
};
