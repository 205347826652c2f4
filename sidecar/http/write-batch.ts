// How the HTTP/1 paths keep writes (and so syscalls and TLS records) few.
//
// smallLatin1: a body of up to WITH_HEAD bytes is copied into its head's string and leaves in one plain write.
// That covers most requests and answers, and they are written at once, uncorked: corking a single write only
// cost allocations (the Writable's buffer) and held it back (h1-proxy.ts has the figures).
//
// corkForTurn: an answer that takes several writes (chunked, or a larger body) is corked. The first such write
// of a turn of the event loop leaves at the end of its tick (so a head and body leave together); later ones are
// held until setImmediate, right after the turn's I/O callbacks, so that a batch of them goes out together
// rather than each waking its reader mid-turn. Holding every write to the end of the turn, or none, measured
// the same within the machine's noise (five alternating runs each); this split never holds back the first.

interface Corkable {
  cork(): void;
  uncork(): void;
}

let pending: Corkable[] = [];
let spare: Corkable[] = [];
let scheduled = false;

function flush(): void {
  scheduled = false;
  const list = pending;
  pending = spare;
  for (let i = 0; i < list.length; i++) list[i]!.uncork();
  list.length = 0;
  spare = list;
}

function uncork(w: Corkable): void {
  w.uncork();
}

/** Corks `w`: to the end of this tick if it is the turn's first write, else to the end of the turn. */
export function corkForTurn(w: Corkable): void {
  w.cork();
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
    process.nextTick(uncork, w);
    return;
  }
  pending.push(w);
}

/**
 * A body of up to this many bytes leaves in its head's write, copied into the head's string: one buffered write
 * and one TLS record, instead of a writev of two (which cost ~1.5 µs more per message, measured in the pair).
 */
export const WITH_HEAD = 4096;

/** `chunk` as latin1 text to append to a head, if it is small (and, if a string, ASCII); else null. */
export function smallLatin1(chunk: Buffer | string, length: number): string | null {
  if (length > WITH_HEAD) return null;
  if (typeof chunk !== 'string') return chunk.toString('latin1');
  return length === chunk.length ? chunk : null;
}
