// Watching a file for changes the way editors and atomic writers make them: the folder is watched (a rename
// over the file replaces its inode) and a burst of events becomes one call. And the control plane's watch of its
// config file: each save applied or refused, and what the operator is told of it.

import { lstatSync, readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

/** Whether `file` is a symlink now (false when it cannot be read: absent, or its folder unreadable). */
function isSymlink(file: string): boolean {
  try {
    return lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}

export function watchFile(file: string, onChange: () => void, debounceMs = 100): FSWatcher {
  let timer: NodeJS.Timeout | null = null;
  const w = watch(dirname(file), (_event, name) => {
    // A file reached through a symlink changes when a link on the way is renamed over, as Kubernetes updates a
    // mounted ConfigMap (mesh.yaml -> ..data/mesh.yaml, a new ..data renamed over the old): any change beside it counts.
    if (name !== basename(file) && !isSymlink(file)) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
  });
  w.unref();
  return w;
}

/** What the operator is told of a change to the watched config file: applied, refused, or a note on the file itself. */
export type ConfigFileEvent =
  | { readonly file: string; readonly version: number; readonly warnings: readonly string[] }
  | { readonly file: string; readonly error: string }
  | { readonly file: string; readonly note: string };

export interface ConfigFileDeps {
  /** the text of the config live now */
  live(): string;
  /** validates and applies a whole config; throws when it is refused */
  apply(text: string, file: string): { version: number; warnings: string[] };
  log(event: Record<string, unknown>): void;
  tell?: (event: ConfigFileEvent) => void;
}

/** Applies each save of the config file at `path`; an invalid, unreadable or removed file leaves the last good config live. */
export function watchConfigFile(path: string, deps: ConfigFileDeps): FSWatcher {
  // What the operator was last told about the file, so that a problem is told once and its end is told too.
  let told: string | null = null;
  const tell = (note: string) => {
    if (note === told) return;
    told = note;
    deps.log({ msg: `config file ${note}`, file: path });
    deps.tell?.({ file: path, note });
  };
  return watchFile(path, () => {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      // A save by another user (sudo) can leave a file this process cannot read; a directory, or nothing.
      const code = (err as NodeJS.ErrnoException).code;
      tell(code === 'ENOENT' ? 'was removed; the last good config stays live' : `cannot be read (${code ?? (err as Error).message}); the last good config stays live`);
      return;
    }
    if (text === deps.live()) {
      if (told !== null) tell('is the live config again');
      return;
    }
    try {
      const r = deps.apply(text, path);
      told = null;
      deps.log({ msg: 'config file changed; applied', file: path, version: r.version });
      deps.tell?.({ file: path, version: r.version, warnings: r.warnings });
    } catch (err) {
      told = (err as Error).message;
      deps.log({ msg: 'config file changed but is invalid; the last good config stays live', file: path, error: (err as Error).message });
      deps.tell?.({ file: path, error: (err as Error).message });
    }
  });
}
