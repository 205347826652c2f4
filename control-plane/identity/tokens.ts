// Bootstrap tokens: short-lived, single-use JWTs (ES256) that each prove one SPIFFE ID to the identity API.

import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { WeftError } from '../../errors.ts';
import { parseSpiffeId } from '../../ca/spiffe-id.ts';
import type { StateDir } from '../state-dir.ts';
import { UsedTokens } from './used-tokens.ts';

const ISSUER = 'weft-control-plane';
const AUDIENCE = 'weft-bootstrap';
export const DEFAULT_TOKEN_TTL_S = 10 * 60;
export const MAX_TOKEN_TTL_S = 24 * 3600;

export interface IssuedToken {
  readonly token: string;
  readonly identity: string;
  readonly expiresAt: Date;
  readonly id: string;
}

export class BootstrapTokens {
  readonly #privateKey: KeyObject;
  readonly #publicKey: KeyObject;
  readonly #used: UsedTokens;
  readonly #trustDomain: string;
  readonly #clock: () => number;

  constructor(opts: { state: StateDir; trustDomain: string; clock?: () => number }) {
    const pem = opts.state.secret('token.key', () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    this.#privateKey = createPrivateKey(pem);
    this.#publicKey = createPublicKey(this.#privateKey);
    this.#clock = opts.clock ?? Date.now;
    this.#used = new UsedTokens(opts.state.path('used-tokens.jsonl'), this.#clock());
    this.#trustDomain = opts.trustDomain;
  }

  async issue(identity: string, ttlSeconds: number = DEFAULT_TOKEN_TTL_S): Promise<IssuedToken> {
    const id = parseSpiffeId(identity);
    if (id.trustDomain !== this.#trustDomain) {
      throw new WeftError('WEFT_CA_WRONG_TRUST_DOMAIN', `identity ${identity} is not in trust domain ${this.#trustDomain}`, { identity });
    }
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TOKEN_TTL_S) {
      throw new WeftError('WEFT_API_BAD_REQUEST', `token lifetime ${ttlSeconds}s is out of bounds: 1s to ${MAX_TOKEN_TTL_S}s`, { ttlSeconds });
    }
    const now = Math.floor(this.#clock() / 1000);
    const jti = randomBytes(16).toString('base64url');
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(id.uri)
      .setJti(jti)
      .setIssuedAt(now)
      .setExpirationTime(now + ttlSeconds)
      .sign(this.#privateKey);
    return { token, identity: id.uri, expiresAt: new Date((now + ttlSeconds) * 1000), id: jti };
  }

  /** Checks signature, audience and expiry; does not spend the token. */
  async verify(token: string): Promise<TokenClaims> {
    let payload: { sub?: string; jti?: string; exp?: number };
    try {
      ({ payload } = await jwtVerify(token, this.#publicKey, {
        issuer: ISSUER,
        audience: AUDIENCE,
        algorithms: ['ES256'],
        currentDate: new Date(this.#clock()),
        requiredClaims: ['sub', 'jti', 'exp'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) {
        throw new WeftError('WEFT_TOKEN_EXPIRED', `the bootstrap token expired at ${new Date(Number((err.payload as { exp?: number }).exp) * 1000).toISOString()}; ask the operator for a new one (weft token)`);
      }
      throw new WeftError('WEFT_TOKEN_INVALID', `the bootstrap token is not valid: ${(err as Error).message}`, {}, { cause: err });
    }
    const claims = { identity: parseSpiffeId(payload.sub!).uri, id: payload.jti!, exp: payload.exp! };
    this.checkUnused(claims);
    return claims;
  }

  checkUnused(claims: TokenClaims): void {
    if (this.#used.has(claims.id)) {
      throw new WeftError('WEFT_TOKEN_REPLAYED', `the bootstrap token ${claims.id} was already used; a token works once, ask the operator for a new one (weft token)`, { tokenId: claims.id });
    }
  }

  /**
   * Spends a verified token. Synchronous: a caller that checks, signs and spends without awaiting in between
   * cannot be raced by a second redemption of the same token.
   */
  spend(claims: TokenClaims): void {
    this.checkUnused(claims);
    this.#used.add(claims.id, claims.exp);
  }
}

export interface TokenClaims {
  readonly identity: string;
  readonly id: string;
  /** seconds since the epoch */
  readonly exp: number;
}
