// The error every failure is reported with, and the contract's error codes.

/**
 * HTTP status of each error code of the contract.
 * @type {Readonly<Record<string, number>>}
 */
export const CODE_STATUS = {
  bad_request: 400, unauthorized: 401, forbidden: 403, not_found: 404,
  method_not_allowed: 405, precondition_failed: 412, too_large: 413,
  unsupported_media_type: 415, rate_limited: 429, internal: 500,
  bad_gateway: 502, unavailable: 503, timeout: 504,
};
/** @type {Readonly<Record<number, string>>} */
const STATUS_CODE = Object.fromEntries(Object.entries(CODE_STATUS).map(([c, s]) => [s, c]));

/**
 * ViewsyncError is how every failure is reported: `code` is one of the
 * contract's codes (bad_request, not_found, precondition_failed, …) or one
 * of the client's own: `network` (no answer), `unreachable` (attempts to
 * connect got no answer, maxSilentAttempts in a row), `closed` (session
 * closed), `bad_response` (an answer that does not follow the contract).
 * `status` is the HTTP status (0 when there was none).
 */
export class ViewsyncError extends Error {
  /** @type {'ViewsyncError'} */
  name = 'ViewsyncError';

  /**
   * @param {import('../viewsync.js').ErrorCode | string} code
   * @param {string} message
   * @param {number} [status] default: the status that goes with code, else 0
   */
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status ?? CODE_STATUS[code] ?? 0;
  }
}

/**
 * errorFrom builds the ViewsyncError of a failed HTTP answer.
 * @param {{status: number, json(): Promise<any>}} res
 * @param {string} what the request, for the message
 */
export async function errorFrom(res, what) {
  let code = STATUS_CODE[res.status] || (res.status >= 500 ? 'internal' : 'bad_request');
  let message = `${what}: HTTP ${res.status}`;
  try {
    const body = await res.json();
    if (body && body.error && typeof body.error.code === 'string') {
      code = body.error.code;
      message = String(body.error.message || message);
    }
  } catch { /* not the contract's error body */ }
  return new ViewsyncError(code, message, res.status);
}
