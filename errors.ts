// The one list of Weft's error codes, grouped by subsystem, each with the HTTP status an API answers with.

export const ErrorCodes = {
  // SPIFFE identities
  WEFT_SPIFFE_INVALID: 400,
  // certificate authority: input the caller sent
  WEFT_CA_PEM_MALFORMED: 400,
  WEFT_CA_CSR_MALFORMED: 400,
  WEFT_CA_CSR_SIGNATURE: 400,
  WEFT_CA_CSR_KEY_UNSUPPORTED: 400,
  WEFT_CA_CSR_NAME_MISMATCH: 403,
  WEFT_CA_WRONG_TRUST_DOMAIN: 403,
  WEFT_CA_TTL_OUT_OF_BOUNDS: 400,
  // certificate authority: its own state
  WEFT_CA_ISSUER_NOT_YET_VALID: 503,
  WEFT_CA_ISSUER_EXPIRED: 503,
  WEFT_CA_ISSUER_EXPIRES_TOO_SOON: 503,
  WEFT_CA_KEY_MISMATCH: 500,
  WEFT_CA_CHAIN_INVALID: 500,
  WEFT_CA_STORE_CORRUPT: 500,
  WEFT_CA_STORE_EXISTS: 409,
  WEFT_CA_STORE_MISSING: 404,
  WEFT_CA_ROTATION: 409,
  // certificate verification (a peer's chain against a trust bundle)
  WEFT_CERT_UNTRUSTED: 403,
  WEFT_CERT_EXPIRED: 403,
  WEFT_CERT_NOT_SVID: 403,
  // control plane: identity API and operator API
  WEFT_TOKEN_INVALID: 401,
  WEFT_TOKEN_EXPIRED: 401,
  WEFT_TOKEN_REPLAYED: 401,
  WEFT_AUTH_REQUIRED: 401,
  WEFT_AUTH_FORBIDDEN: 403,
  WEFT_CERT_REVOKED: 403,
  WEFT_API_BAD_REQUEST: 400,
  WEFT_API_NOT_FOUND: 404,
  /** a method a path does not take (the metrics port: GET /metrics only) */
  WEFT_API_METHOD_NOT_ALLOWED: 405,
  WEFT_API_TOO_LARGE: 413,
  /** a request body (or a stream's registration line) that did not arrive whole in time */
  WEFT_API_TIMEOUT: 408,
  /** too many refused credentials from one address, or renewals of one certificate or from one address: wait (Retry-After) */
  WEFT_API_RATE_LIMITED: 429,
  WEFT_CP_UNREACHABLE: 503,
  /** another control plane runs on the state dir (DIR/control-plane.lock): one writer of its tokens, journals and config */
  WEFT_STATE_DIR_LOCKED: 409,
  // command line
  WEFT_CLI_USAGE: 400,
  /** the control plane or a sidecar cannot bind a port it was given (taken, privileged, or not this host's) */
  WEFT_LISTEN_FAILED: 500,
  /** a sidecar's admin port (weft top, weft status) did not answer, or not with what it should */
  WEFT_CLI_SIDECAR_ADMIN: 502,
  // mesh config
  WEFT_CONFIG_INVALID: 400,
  /** a config change made against a config that has changed since it was read (If-Match) */
  WEFT_CONFIG_CONFLICT: 409,
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

/** Every error Weft raises on purpose: a stable `code` to test against and a message that says what, where and what to do. */
export class WeftError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WeftError';
    this.code = code;
    this.status = ErrorCodes[code];
    this.details = details;
  }

  toJSON(): { code: ErrorCode; message: string; details: Readonly<Record<string, unknown>> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export function isWeftError(err: unknown, code?: ErrorCode): err is WeftError {
  return err instanceof WeftError && (code === undefined || err.code === code);
}
