// The live config's entity tag: what GET /v1/config sends as ETag and PUT /v1/config takes as If-Match, so that an
// edit of the config read (weft canary reads, edits, writes back) cannot undo a change made in between.

import { createHash } from 'node:crypto';

export function configTag(text: string): string {
  return `"${createHash('sha256').update(text).digest('hex').slice(0, 32)}"`;
}
