// Reading the Prometheus text exposition format (version 0.0.4), samples only: what `weft top` needs from a
// sidecar's /metrics. The npm parsers tried mis-read labelled histograms (parse-prometheus-text-format merges
// every series of a histogram into one and drops its labels), so this is the format's sample line, by the spec:
//   metric_name [ "{" label_name "=" `"` label_value `"` { "," ... } [ "," ] "}" ] value [ timestamp ]
// with label values escaping \\, \" and \n. Comment lines (# HELP, # TYPE) and blank lines are skipped.

import { WeftError } from '../../errors.ts';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const NAME = /[a-zA-Z_:][a-zA-Z0-9_:]*/y;
const LABEL = /[a-zA-Z_][a-zA-Z0-9_]*/y;
const SPACE = /[ \t]*/y;
const VALUE = /(\S+)(?:[ \t]+-?\d+)?[ \t]*$/y;

function numberOf(text: string): number {
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  const n = Number(text);
  if (text === '' || Number.isNaN(n)) throw new Error(`${JSON.stringify(text)} is not a sample value`);
  return n;
}

function match(re: RegExp, line: string, at: number): string | null {
  re.lastIndex = at;
  const m = re.exec(line);
  return m ? m[0] : null;
}

function sampleOf(line: string): Sample {
  let at = 0;
  const name = match(NAME, line, at);
  if (!name) throw new Error('no metric name');
  at += name.length;
  const labels: Record<string, string> = {};
  if (line[at] === '{') {
    at++;
    for (;;) {
      at += match(SPACE, line, at)!.length;
      if (line[at] === '}') break;
      const label = match(LABEL, line, at);
      if (!label || line[at + label.length] !== '=' || line[at + label.length + 1] !== '"') throw new Error(`bad label at column ${at + 1}`);
      at += label.length + 2;
      let value = '';
      for (;;) {
        const c = line[at++];
        if (c === undefined) throw new Error('unterminated label value');
        if (c === '"') break;
        if (c === '\\') {
          const e = line[at++];
          value += e === 'n' ? '\n' : e === '\\' || e === '"' ? e : `\\${e ?? ''}`;
        } else value += c;
      }
      labels[label] = value;
      at += match(SPACE, line, at)!.length;
      if (line[at] === ',') at++;
      else if (line[at] !== '}') throw new Error(`expected , or } at column ${at + 1}`);
    }
    at++;
  }
  const space = match(SPACE, line, at)!;
  if (space === '') throw new Error('no value');
  at += space.length;
  VALUE.lastIndex = at;
  const v = VALUE.exec(line);
  if (!v) throw new Error('bad value');
  return { name, labels, value: numberOf(v[1]!) };
}

/** Every sample in an exposition; a malformed line is an error naming its line number (`source` says whose). */
export function samplesOf(text: string, source: string): Sample[] {
  const out: Sample[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    try {
      out.push(sampleOf(line));
    } catch (err) {
      throw new WeftError('WEFT_CLI_SIDECAR_ADMIN', `${source}: line ${i + 1} is not a Prometheus sample (${(err as Error).message}): ${line.slice(0, 120)}`, { source, line: i + 1 });
    }
  }
  return out;
}
