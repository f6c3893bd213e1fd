// Small helpers: reconnect delays, waits, names, ids and cursors.
import { ViewsyncError } from './errors.js';

/** NAME_RE is the contract's collection name. */
export const NAME_RE = /^[a-z0-9][a-z0-9_.-]{0,63}$/;

/**
 * backoff returns the delay before reconnect attempt n (0-based): full
 * jitter, uniform in [0, min(cap, base·2ⁿ)), so that clients cut off together
 * do not come back together.
 * @param {number} attempt
 * @param {number} [base] ms
 * @param {number} [cap] ms
 * @param {() => number} [random] uniform in [0, 1)
 * @returns {number} ms
 */
export function backoff(attempt, base = 250, cap = 10000, random = Math.random) {
  const ceiling = Math.min(cap, base * 2 ** Math.min(Math.max(attempt, 0), 30));
  return Math.floor(random() * ceiling);
}

/**
 * sleep resolves after ms, or at once when signal aborts.
 * @param {number} ms
 * @param {AbortSignal} [signal]
 * @returns {Promise<void>}
 */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

export function noop() {}

/**
 * encodeId percent-encodes a record id as one path segment. Dots are encoded
 * too (%2E), so that a Go router never sees a "." or ".." segment to clean.
 * The URL parsers of browsers still treat a segment that is exactly "%2E" or
 * "%2E%2E" as a dot segment, so ids "." and ".." cannot travel in a path at
 * all: see isDotId.
 * @param {string} id
 */
export function encodeId(id) {
  return encodeURIComponent(id).replace(/\./g, '%2E');
}

/**
 * isDotId reports ids that no URL path can carry; they are written through commits.
 * @param {string} id
 */
export function isDotId(id) {
  return id === '.' || id === '..';
}

/**
 * parseCursor parses "EPOCH:VERSION"; null when malformed.
 * @param {unknown} s
 * @returns {{epoch: string, version: number} | null}
 */
export function parseCursor(s) {
  if (typeof s !== 'string') return null;
  const i = s.lastIndexOf(':');
  if (i < 0 || !/^\d+$/.test(s.slice(i + 1))) return null;
  return { epoch: s.slice(0, i), version: Number(s.slice(i + 1)) };
}

/**
 * checkName throws bad_request unless name is a valid collection name.
 * @param {unknown} name
 * @returns {asserts name is string}
 */
export function checkName(name) {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new ViewsyncError('bad_request', `invalid collection name ${JSON.stringify(name)}: want ^[a-z0-9][a-z0-9_.-]{0,63}$`);
  }
}

/**
 * checkId throws bad_request unless id is a valid record id.
 * @param {unknown} id
 * @returns {asserts id is string}
 */
export function checkId(id) {
  // eslint-disable-next-line no-control-regex
  if (typeof id !== 'string' || id === '' || /[\u0000-\u001f\u007f]/.test(id)) {
    throw new ViewsyncError('bad_request', `invalid record id ${JSON.stringify(id)}: want 1–256 bytes of UTF-8 without control characters`);
  }
}
