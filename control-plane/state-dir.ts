// The control plane's state directory: where each piece of durable state lives, and the secrets it makes once.

import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { WeftError } from '../errors.ts';
import { writeFileAtomic } from '../ca/atomic-file.ts';

export const DEFAULT_STATE_DIR = process.env.WEFT_STATE_DIR ?? '.weft';

/**
 *   ca/                  the certificate authority (ca/store.ts)
 *   token.key            the key bootstrap tokens are signed with (0600)
 *   used-tokens.jsonl    IDs of redeemed bootstrap tokens, so a token works once, across restarts
 *   admin-token          the operator credential for the API (0600)
 *   config.yaml          the last config applied and accepted
 *   revocations.json     revoked serials and identities
 *   control-plane.json   where the running control plane listens (for the CLI)
 *   control-plane.lock   who runs on this state dir: pid, start time, host (./state-lock.ts)
 */
export type StateEntry = 'ca' | 'token.key' | 'used-tokens.jsonl' | 'admin-token' | 'config.yaml' | 'revocations.json' | 'control-plane.json' | 'control-plane.lock';

export class StateDir {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  path(name: StateEntry): string {
    return join(this.root, name);
  }

  /** Makes the directory; true if it was not there. */
  ensure(): boolean {
    return mkdirSync(this.root, { recursive: true, mode: 0o700 }) !== undefined;
  }

  /** Those of `names` not there yet: what a start may make, and so must remove again if it fails. */
  absent(names: readonly StateEntry[]): StateEntry[] {
    return names.filter((n) => !existsSync(this.path(n)));
  }

  /** Removes `names` (made by a start that failed), and the directory itself if it was `made` too and is now empty. */
  remove(names: readonly StateEntry[], made: boolean): void {
    for (const n of names) rmSync(this.path(n), { recursive: true, force: true });
    if (!made) return;
    try {
      rmdirSync(this.root);
    } catch {
      // not empty: something else was put there meanwhile, and stays
    }
  }

  /** The config to start from, and its file: the one given, else the last applied (config.yaml). */
  readConfig(configPath: string | undefined): [string, string] {
    const path = configPath ?? this.path('config.yaml');
    if (!existsSync(path)) {
      throw new WeftError('WEFT_CONFIG_INVALID', configPath ? `${path}: no such config file` : `no config: pass --config mesh.yaml (nothing applied yet in ${this.root})`, { path });
    }
    return [readFileSync(path, 'utf8'), path];
  }

  /** The admin token, made on first use: 32 random bytes, base64url, mode 0600. */
  adminToken(): string {
    return this.secret('admin-token', () => randomBytes(32).toString('base64url'));
  }

  readAdminToken(): string {
    const path = this.path('admin-token');
    if (!existsSync(path)) {
      throw new WeftError('WEFT_AUTH_REQUIRED', `${path} not found: no admin token; start the control plane with --state ${this.root} first, or pass --admin-token-file`, { path });
    }
    return readFileSync(path, 'utf8').trim();
  }

  /** Reads a 0600 secret, creating it with `make` if absent; refuses one that others can read. */
  secret(name: 'admin-token' | 'token.key', make: () => string): string {
    const path = this.path(name);
    if (!existsSync(path)) {
      this.ensure();
      writeFileAtomic(path, make(), 0o600);
    }
    const mode = statSync(path).mode & 0o777;
    if (mode & 0o077) {
      throw new WeftError('WEFT_CA_STORE_CORRUPT', `${path} is readable by others (mode ${mode.toString(8)}); it must be 0600: chmod 600 ${path}`, { path });
    }
    const value = readFileSync(path, 'utf8').trim();
    // An empty one (a truncated write, an editor) would start a control plane no operator credential can open.
    if (value.length < 16) {
      throw new WeftError('WEFT_CA_STORE_CORRUPT', `${path} is ${value ? 'too short to be one' : 'empty'}; delete it and start the control plane again to make a new one${name === 'token.key' ? ' (bootstrap tokens issued so far stop working)' : ''}`, { path });
    }
    return value;
  }
}
