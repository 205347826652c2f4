// Writes made while the event loop works through one batch of ready sockets leave together, after the batch.
//
// Under load one turn of the loop reads many sockets. Writing each answer as it is made wakes its reader (the
// app, a peer sidecar, the client) in the middle of the turn, and the scheduler often switches to it there;
// corked until setImmediate (which runs right after the turn's I/O callbacks), a request's head and body, or a
// response's head, body and end, still leave as one write each, but together. With one socket ready, that is
// at once.

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

/** Corks `w` until the end of this event-loop turn's I/O callbacks (setImmediate runs right after them). */
export function corkForTurn(w: Corkable): void {
  w.cork();
  pending.push(w);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
}
