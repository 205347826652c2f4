// Watching a file for changes the way editors and atomic writers make them: the folder is watched (a rename
// over the file replaces its inode) and a burst of events becomes one call.

import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

export function watchFile(file: string, onChange: () => void, debounceMs = 100): FSWatcher {
  let timer: NodeJS.Timeout | null = null;
  const w = watch(dirname(file), (_event, name) => {
    if (name !== basename(file)) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
  });
  w.unref();
  return w;
}
