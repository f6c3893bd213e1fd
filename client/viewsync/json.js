// JSON values: deep equality, merge patches, dotted field paths.

/** @typedef {import('../viewsync.js').JSONValue} JSONValue */

/**
 * jsonEqual compares two JSON values deeply.
 * @param {any} a
 * @param {any} b
 * @returns {boolean}
 */
export function jsonEqual(a, b) {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (!Object.hasOwn(b, k) || !jsonEqual(a[k], b[k])) return false;
  return true;
}

/**
 * mergePatch applies a JSON merge patch (RFC 7396) to target, returning a new value.
 * @param {JSONValue | undefined} target
 * @param {JSONValue} patch
 * @returns {JSONValue}
 */
export function mergePatch(target, patch) {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  /** @type {{[key: string]: JSONValue}} */
  const out = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/**
 * getPath reads a dotted field path ("a.b") of a JSON value; undefined when absent.
 * @param {any} v
 * @param {string} path
 * @returns {JSONValue | undefined}
 */
export function getPath(v, path) {
  for (const k of path.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = v[k];
  }
  return v;
}

/**
 * setPath returns a copy of v with the dotted field path set to x (objects on the way copied or made).
 * @param {JSONValue | undefined} v
 * @param {string} path
 * @param {JSONValue} x
 * @returns {{[key: string]: JSONValue}}
 */
export function setPath(v, path, x) {
  const keys = path.split('.');
  /** @type {{[key: string]: any}} */
  const root = v !== null && typeof v === 'object' && !Array.isArray(v) ? { ...v } : {};
  let o = root;
  for (let i = 0; i < keys.length - 1; i++) {
    const cur = o[keys[i]];
    o = o[keys[i]] = cur !== null && typeof cur === 'object' && !Array.isArray(cur) ? { ...cur } : {};
  }
  o[keys[keys.length - 1]] = x;
  return root;
}

/**
 * canonicalJSON encodes a JSON value compactly with every object's keys in
 * sorted order (by UTF-16 code units, as Array.prototype.sort has it), so
 * that equal values give equal text whatever order their keys were written
 * in. Arrays keep their order.
 * @param {JSONValue} v a JSON value (as JSON.parse returns)
 * @returns {string}
 */
export function canonicalJSON(v) {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJSON).join(',')}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJSON(v[k])}`).join(',')}}`;
}

/**
 * deepFreeze freezes a JSON value and everything in it; returns it.
 * @template T
 * @param {T} v
 * @returns {T}
 */
export function deepFreeze(v) {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}
