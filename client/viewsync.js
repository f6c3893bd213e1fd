// viewsync.js — the browser client of viewsync (HTTP API v1).
//
// An ES module with no dependencies and no build step:
//
//   import { connect, bindTable } from '/viewsync.js';
//   const session = connect({ token });
//   const products = session.collection('products');
//   products.subscribe((ev) => console.log(ev.type, ev.version, ev.changed));
//
// The flow: one Session owns one link to the server (a WebSocket carrying
// every subscription, or per-collection SSE streams, long-polls or polls)
// and one View per collection. Each message from the link is applied to its
// View in version order, exactly once; a gap or another epoch makes the link
// resync from the view's cursor (EPOCH:VERSION). Types: viewsync.d.ts.

const NAME_RE = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const CALL_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const ORDER = ['ws', 'sse', 'longpoll', 'poll'];
const SUBPROTOCOL = 'viewsync.v1';
/** The WebSocket close status of a connection whose token expired. */
const CLOSE_TOKEN_EXPIRED = 4401;
// Writes and calls larger than this go over HTTP, which answers an oversize
// body with a clean 413 instead of closing the shared WebSocket (1009).
const WS_MAX_SEND = 64 * 1024;
// Consecutive failures to connect, with the server reachable over plain
// HTTP, after which a transport is given up for the next one.
const FALLBACK_AFTER = 2;
const ACK_INTERVAL = 250;

/** HTTP status of each error code of the contract. */
const CODE_STATUS = {
  bad_request: 400, unauthorized: 401, forbidden: 403, not_found: 404,
  method_not_allowed: 405, precondition_failed: 412, too_large: 413,
  unsupported_media_type: 415, rate_limited: 429, internal: 500,
  bad_gateway: 502, unavailable: 503, timeout: 504,
};
const STATUS_CODE = Object.fromEntries(Object.entries(CODE_STATUS).map(([c, s]) => [s, c]));

/**
 * ViewsyncError is how every failure is reported: `code` is one of the
 * contract's codes (bad_request, not_found, precondition_failed, …) or one
 * of the client's own: `network` (no answer), `closed` (session closed),
 * `bad_response` (an answer that does not follow the contract). `status` is
 * the HTTP status (0 when there was none).
 */
export class ViewsyncError extends Error {
  constructor(code, message, status) {
    super(message);
    this.name = 'ViewsyncError';
    this.code = code;
    this.status = status ?? CODE_STATUS[code] ?? 0;
  }
}

// ---------------------------------------------------------------------------
// Pure helpers (exported as _internal for tests).

/**
 * backoff returns the delay before reconnect attempt n (0-based): full
 * jitter, uniform in [0, min(cap, base·2ⁿ)), so that clients cut off together
 * do not come back together.
 */
function backoff(attempt, base = 250, cap = 10000, random = Math.random) {
  const ceiling = Math.min(cap, base * 2 ** Math.min(Math.max(attempt, 0), 30));
  return Math.floor(random() * ceiling);
}

/**
 * encodeId percent-encodes a record id as one path segment. Dots are encoded
 * too (%2E), so that a Go router never sees a "." or ".." segment to clean.
 * The URL parsers of browsers still treat a segment that is exactly "%2E" or
 * "%2E%2E" as a dot segment, so ids "." and ".." cannot travel in a path at
 * all: see isDotId.
 */
function encodeId(id) {
  return encodeURIComponent(id).replace(/\./g, '%2E');
}

/** isDotId reports ids that no URL path can carry; they are written through commits. */
function isDotId(id) {
  return id === '.' || id === '..';
}

/** parseCursor parses "EPOCH:VERSION"; null when malformed. */
function parseCursor(s) {
  if (typeof s !== 'string') return null;
  const i = s.lastIndexOf(':');
  if (i < 0 || !/^\d+$/.test(s.slice(i + 1))) return null;
  return { epoch: s.slice(0, i), version: Number(s.slice(i + 1)) };
}

/** jsonEqual compares two JSON values deeply. */
function jsonEqual(a, b) {
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

/** mergePatch applies a JSON merge patch (RFC 7396) to target, returning a new value. */
function mergePatch(target, patch) {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/**
 * SSEParser reads a text/event-stream as the HTML standard defines it:
 * lines end in CRLF, LF or CR (also when split across chunks), ":" starts a
 * comment, a blank line dispatches the event gathered so far. Feed it decoded
 * text with push; it calls onEvent({type, data, id}) and keeps lastEventId
 * and retry (the server's reconnection hint, in ms).
 */
class SSEParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.lastEventId = '';
    this.retry = null;
    this._buf = '';
    this._skipLF = false;
    this._first = true;
    this._type = '';
    this._data = [];
    this._hasData = false;
  }

  push(chunk) {
    let buf = this._buf + chunk;
    if (this._first && buf.length > 0) {
      if (buf.charCodeAt(0) === 0xfeff) buf = buf.slice(1);
      this._first = buf.length === 0;
    }
    let start = 0;
    if (this._skipLF && buf.length > 0) {
      if (buf[0] === '\n') start = 1;
      this._skipLF = false;
    }
    const re = /\r\n|\r|\n/g;
    re.lastIndex = start;
    let m;
    while ((m = re.exec(buf)) !== null) {
      // A CR at the very end may be the first half of a CRLF.
      if (m[0] === '\r' && m.index === buf.length - 1) this._skipLF = true;
      this._line(buf.slice(start, m.index));
      start = m.index + m[0].length;
    }
    this._buf = buf.slice(start);
  }

  _line(line) {
    if (line === '') {
      this._dispatch();
      return;
    }
    if (line[0] === ':') return;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value[0] === ' ') value = value.slice(1);
    switch (field) {
      case 'event': this._type = value; break;
      case 'data': this._data.push(value); this._hasData = true; break;
      case 'id': if (!value.includes('\0')) this.lastEventId = value; break;
      case 'retry': if (/^\d+$/.test(value)) this.retry = Number(value); break;
      default: // ignored, as the standard says
    }
  }

  _dispatch() {
    const type = this._type || 'message';
    const data = this._data.join('\n');
    const had = this._hasData;
    this._type = '';
    this._data = [];
    this._hasData = false;
    if (had) this.onEvent({ type, data, id: this.lastEventId });
  }
}

/** newState returns the empty state of a view that has not synced yet. */
function newState() {
  return { epoch: null, version: 0, records: new Map(), versions: new Map() };
}

/**
 * applyToState applies one message — {type:'reset'|'catchup'|'commit',
 * epoch, version, …} — to a view's state, in place, and says what happened:
 *   {status:'applied', event}  the state moved; event lists what changed
 *   {status:'stale'}           version ≤ current: already applied, ignored
 *   {status:'gap'}             a commit past current+1, or none synced yet
 *   {status:'epoch'}           another history: resync from the cursor
 * A reset always applies (it replaces the state). A catch-up upserts its
 * records and drops its deleted ids.
 */
function applyToState(st, m) {
  const touched = new Map(); // id → existed before
  const touch = (id) => { if (!touched.has(id)) touched.set(id, st.records.has(id)); };
  const ev = { type: m.type, epoch: m.epoch ?? st.epoch, version: m.version };
  switch (m.type) {
    case 'reset': {
      const records = m.records || [];
      const incoming = new Map(records.map((r) => [r.id, r.version]));
      const sameEpoch = st.epoch === m.epoch;
      const added = [], updated = [], removed = [];
      for (const [id, v] of incoming) {
        if (!st.versions.has(id)) added.push(id);
        else if (!sameEpoch || st.versions.get(id) !== v) updated.push(id);
      }
      for (const id of st.versions.keys()) if (!incoming.has(id)) removed.push(id);
      st.records.clear();
      st.versions.clear();
      for (const r of records) {
        st.records.set(r.id, r.value);
        st.versions.set(r.id, r.version);
      }
      st.epoch = m.epoch;
      st.version = m.version;
      ev.records = records;
      return { status: 'applied', event: finish(ev, added, updated, removed) };
    }
    case 'catchup': {
      if (st.epoch !== null && m.epoch && m.epoch !== st.epoch) return { status: 'epoch' };
      if (st.epoch === null) return { status: 'gap' };
      if (m.version <= st.version) return { status: 'stale' };
      for (const r of m.records || []) {
        touch(r.id);
        st.records.set(r.id, r.value);
        st.versions.set(r.id, r.version);
      }
      for (const id of m.deleted || []) {
        touch(id);
        st.records.delete(id);
        st.versions.delete(id);
      }
      st.version = m.version;
      ev.records = m.records || [];
      ev.deleted = m.deleted || [];
      break;
    }
    case 'commit': {
      if (st.epoch !== null && m.epoch && m.epoch !== st.epoch) return { status: 'epoch' };
      if (st.epoch === null) return { status: 'gap' };
      if (m.version <= st.version) return { status: 'stale' };
      if (m.version !== st.version + 1) return { status: 'gap' };
      for (const op of m.ops || []) {
        touch(op.id);
        if (op.op === 'delete') {
          st.records.delete(op.id);
          st.versions.delete(op.id);
        } else {
          st.records.set(op.id, op.value);
          st.versions.set(op.id, m.version);
        }
      }
      st.version = m.version;
      ev.ops = m.ops || [];
      if (m.at) ev.at = m.at;
      break;
    }
    default:
      return { status: 'stale' };
  }
  const added = [], updated = [], removed = [];
  for (const [id, before] of touched) {
    const after = st.records.has(id);
    if (before && after) updated.push(id);
    else if (after) added.push(id);
    else if (before) removed.push(id);
  }
  return { status: 'applied', event: finish(ev, added, updated, removed) };
}

function finish(ev, added, updated, removed) {
  ev.added = added;
  ev.updated = updated;
  ev.removed = removed;
  ev.changed = [...added, ...updated, ...removed];
  return ev;
}

/**
 * changesMessages turns an answer of GET …/changes (or a snapshot) into the
 * messages applyToState takes, in order.
 */
function changesMessages(body) {
  if (!body || typeof body !== 'object') throw new ViewsyncError('bad_response', 'changes: not a JSON object', 0);
  if (body.reset || (!('commits' in body) && !body.compacted && Array.isArray(body.records))) {
    return [{ type: 'reset', epoch: body.epoch, version: body.version, records: body.records || [] }];
  }
  if (body.compacted) {
    return [{ type: 'catchup', epoch: body.epoch, version: body.version, records: body.records || [], deleted: body.deleted || [] }];
  }
  return (body.commits || []).map((c) => ({ type: 'commit', epoch: body.epoch, version: c.version, at: c.at, ops: c.ops }));
}

/** errorFrom builds the ViewsyncError of a failed HTTP answer. */
async function errorFrom(res, what) {
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

// getPath / setPath read and write a dotted field path in a JSON value.
function getPath(v, path) {
  for (const k of path.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = v[k];
  }
  return v;
}

function setPath(v, path, x) {
  const keys = path.split('.');
  const root = v !== null && typeof v === 'object' && !Array.isArray(v) ? { ...v } : {};
  let o = root;
  for (let i = 0; i < keys.length - 1; i++) {
    const cur = o[keys[i]];
    o = o[keys[i]] = cur !== null && typeof cur === 'object' && !Array.isArray(cur) ? { ...cur } : {};
  }
  o[keys[keys.length - 1]] = x;
  return root;
}

function sleep(ms, signal) {
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

function checkName(name) {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new ViewsyncError('bad_request', `invalid collection name ${JSON.stringify(name)}: want ^[a-z0-9][a-z0-9_.-]{0,63}$`);
  }
}

function checkId(id) {
  // eslint-disable-next-line no-control-regex
  if (typeof id !== 'string' || id === '' || /[\u0000-\u001f\u007f]/.test(id)) {
    throw new ViewsyncError('bad_request', `invalid record id ${JSON.stringify(id)}: want 1–256 bytes of UTF-8 without control characters`);
  }
}

function noop() {}

// ---------------------------------------------------------------------------
// Session

/** connect opens a session; see Session. */
export function connect(options = {}) {
  return new Session(options);
}

/**
 * Session is one client's connection to a viewsync server: its views, its
 * single link (whichever transport works) and its calls.
 */
export class Session {
  #base; #token; #fetch; #WS; #opts;
  #views = new Map();
  #listeners = { status: new Set(), error: new Set() };
  #order; #level = 0; #link = null; #attempt = 0; #fails = 0;
  #timer = null; #closed = false; #upAt = 0;
  #status;
  #clientId = globalThis.crypto?.randomUUID?.() ?? Math.random().toString(36).slice(2);
  #onOnline = () => { if (this.#timer !== null && !this.#link) this.#startNow(); };

  constructor(options = {}) {
    const loc = globalThis.location;
    const url = options.url ?? (loc ? loc.origin : undefined);
    if (!url) throw new ViewsyncError('bad_request', 'connect: url is required outside a browser page');
    this.#base = new URL(String(url), loc?.href).href.replace(/\/+$/, '');
    this.#token = options.token;
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw new ViewsyncError('bad_request', 'connect: no fetch available');
    this.#fetch = f.bind ? f.bind(globalThis) : f;
    this.#WS = options.WebSocket ?? globalThis.WebSocket;
    this.#opts = {
      pollInterval: options.pollInterval ?? 2000,
      longPollWait: options.longPollWait ?? 25,
      idleTimeout: options.idleTimeout ?? 45000,
      openTimeout: options.openTimeout ?? 10000,
      backoffBase: options.backoff?.base ?? 250,
      backoffCap: options.backoff?.cap ?? 10000,
    };
    const t = options.transport ?? 'auto';
    if (t === 'auto') this.#order = ORDER.filter((k) => k !== 'ws' || typeof this.#WS === 'function');
    else if (ORDER.includes(t)) this.#order = [t];
    else throw new ViewsyncError('bad_request', `connect: unknown transport ${JSON.stringify(t)}; want ws, sse, longpoll, poll or auto`);
    if (this.#order.length === 0) this.#order = ['sse'];
    this.#status = { state: 'connecting', transport: this.#order[0] };
    if (options.onStatus) this.on('status', options.onStatus);
    globalThis.addEventListener?.('online', this.#onOnline);
    for (const name of options.collections || []) this.collection(name);
    this.#startNow();
  }

  /**
   * clientId names this session to the server: polls send it so that their
   * cursor counts as what this client has rendered (the server's
   * commit→visible metric).
   */
  get clientId() { return this.#clientId; }

  /** status is the current {state, transport}. */
  get status() { return { ...this.#status }; }

  /** on listens to 'status' ({state, transport}) or 'error' (ViewsyncError) events; returns the unsubscribe function. */
  on(type, fn) {
    const set = this.#listeners[type];
    if (!set) throw new ViewsyncError('bad_request', `unknown event ${JSON.stringify(type)}; want status or error`);
    set.add(fn);
    return () => set.delete(fn);
  }

  /** collection returns the live view of a collection, the same object for the same name. */
  collection(name) {
    checkName(name);
    if (this.#closed) throw new ViewsyncError('closed', 'session closed');
    let v = this.#views.get(name);
    if (v) {
      v._temp = false;
      return v;
    }
    v = new View(this, name);
    this.#views.set(name, v);
    this.#link?.add(v);
    return v;
  }

  /**
   * call runs a named server function with arg and resolves {result,
   * context} once every view of this session includes the versions the
   * answer lists (read-your-writes). context is handed back untouched.
   */
  async call(name, arg, context, options = {}) {
    if (typeof name !== 'string' || !CALL_RE.test(name)) {
      throw new ViewsyncError('bad_request', `invalid call name ${JSON.stringify(name)}: want 1–64 of [A-Za-z0-9_.-]`);
    }
    const a = arg === undefined ? null : arg;
    let answer = await this._viaWS({ type: 'call', name, arg: a });
    if (!answer) {
      answer = await this._json('POST', `/v1/calls/${encodeId(name)}`, { body: { arg: a }, signal: options.signal });
    }
    await this.#waitVersions(answer.versions || {}, options.signal);
    return { result: answer.result, context };
  }

  /** close ends the link and every view; pending waits reject with code "closed". */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = null;
    globalThis.removeEventListener?.('online', this.#onOnline);
    const link = this.#link;
    this.#link = null;
    link?.stop();
    for (const v of this.#views.values()) v._closed();
    this.#views.clear();
    this.#setStatus('closed', this.#status.transport);
  }

  async #waitVersions(versions, signal) {
    await Promise.all(Object.entries(versions).map(async ([name, version]) => {
      if (!NAME_RE.test(name)) return;
      let v = this.#views.get(name);
      if (!v) {
        v = this.collection(name);
        v._temp = true;
      }
      v._tempUses++;
      try {
        await v.waitFor(version, { signal });
      } finally {
        v._tempUses--;
        if (v._temp && v._tempUses === 0) v.close();
      }
    }));
  }

  // --- plumbing used by views and links (not part of the API) ---

  get _views() { return this.#views; }
  get _opts() { return this.#opts; }
  get _base() { return this.#base; }
  get _WS() { return this.#WS; }

  async _token() {
    const t = typeof this.#token === 'function' ? await this.#token() : this.#token;
    return t ? String(t) : '';
  }

  _emit(type, value) {
    for (const fn of [...this.#listeners[type]]) {
      try { fn(value); } catch (e) { queueMicrotask(() => { throw e; }); }
    }
  }

  _removeView(v) {
    if (this.#views.get(v.name) === v) this.#views.delete(v.name);
    this.#link?.remove(v);
  }

  /** _fetch sends one HTTP request with the token; it rejects only when there is no answer. */
  async _fetch(method, path, { body, contentType = 'application/json', headers = {}, signal } = {}) {
    const h = { ...headers };
    const tok = await this._token();
    if (tok) h.Authorization = `Bearer ${tok}`;
    const init = { method, headers: h, signal, credentials: 'same-origin' };
    if (body !== undefined) {
      h['Content-Type'] = contentType;
      init.body = JSON.stringify(body);
    }
    try {
      return await this.#fetch(this.#base + path, init);
    } catch (e) {
      if (e?.name === 'AbortError' || e?.name === 'TimeoutError') throw e;
      throw new ViewsyncError('network', `${method} ${path}: ${e?.message || e}`, 0);
    }
  }

  /** _json sends a request and decodes its JSON answer, or throws its ViewsyncError. */
  async _json(method, path, opts) {
    const res = await this._fetch(method, path, opts);
    if (!res.ok) throw await errorFrom(res, `${method} ${path}`);
    try {
      return await res.json();
    } catch (e) {
      if (e?.name === 'AbortError') throw e;
      throw new ViewsyncError('bad_response', `${method} ${path}: answer is not JSON`, res.status);
    }
  }

  /** _viaWS sends a request over the WebSocket when it is open and the message small; null otherwise. */
  _viaWS(msg) {
    const link = this.#link;
    if (!link || link.kind !== 'ws' || !link.open) return Promise.resolve(null);
    return link.request(msg);
  }

  _setStatusFromLink(link, state) {
    if (link === this.#link) this.#setStatus(state, link.kind);
  }

  #setStatus(state, transport) {
    if (this.#status.state === state && this.#status.transport === transport) return;
    this.#status = { state, transport };
    this._emit('status', { ...this.#status });
  }

  #startNow() {
    clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#closed) return;
    const kind = this.#order[this.#level];
    const Link = { ws: WSLink, sse: SSELink, longpoll: LongPollLink, poll: PollLink }[kind];
    const link = new Link(this);
    this.#link = link;
    this.#setStatus('connecting', kind);
    // Started after the current task, so that the views opened right after
    // connect() go into the first requests.
    queueMicrotask(() => {
      if (this.#link !== link) return;
      Promise.resolve(link.start()).catch((e) => this._linkDown(link, { error: e instanceof ViewsyncError ? e : null }));
    });
  }

  /** _linkUp: link is connected. */
  _linkUp(link) {
    if (link !== this.#link) return;
    this.#fails = 0;
    this.#upAt = Date.now();
    this.#setStatus('live', link.kind);
  }

  /**
   * _linkDown: link ended. opened tells whether it had connected; transport
   * marks a failure that another transport might not have (a WebSocket that
   * cannot open, an event stream a proxy breaks, an endpoint not mounted).
   */
  async _linkDown(link, { opened = false, transport = false, error = null, immediate = false } = {}) {
    if (link !== this.#link || this.#closed) return;
    this.#link = null;
    link.stop();
    if (error) this._emit('error', error);
    let state = immediate ? 'connecting' : 'offline';
    if (opened) {
      // A link that stayed up a while earns a fast reconnect.
      if (Date.now() - this.#upAt > 5000) this.#attempt = 0;
    } else if (transport && this.#level < this.#order.length - 1) {
      // Only failures while the server answers plain HTTP count against a
      // transport: with the server down, every transport would fail.
      this.#setStatus('connecting', link.kind);
      if (await this.#httpWorks()) {
        if (this.#closed || this.#link) return;
        state = 'connecting';
        if (++this.#fails >= FALLBACK_AFTER) {
          this.#level++;
          this.#fails = 0;
          this.#attempt = 0;
          this.#startNow();
          return;
        }
      }
    }
    if (this.#closed || this.#link) return;
    this.#setStatus(state, link.kind);
    const delay = immediate && this.#attempt === 0 ? 0 : backoff(this.#attempt, this.#opts.backoffBase, this.#opts.backoffCap);
    this.#attempt++;
    this.#timer = setTimeout(() => this.#startNow(), delay);
  }

  /** #httpWorks tells whether the server answers plain HTTP (any answer but an auth refusal). */
  async #httpWorks() {
    const name = this.#views.keys().next().value || 'viewsync.probe';
    try {
      const res = await this._fetch('GET', `/v1/collections/${name}/version`, { signal: AbortSignal.timeout?.(this.#opts.openTimeout) });
      res.body?.cancel?.().catch(noop);
      return res.status !== 401 && res.status !== 403 && res.status < 500;
    } catch {
      return false;
    }
  }
}

// ---------------------------------------------------------------------------
// View

/**
 * View is the live state of one collection: records (a Map id → value, kept
 * in place so that a reference to it stays valid), version and epoch.
 */
export class View {
  #session; #state = newState(); #subs = new Set(); #waiters = new Set();
  #readyResolve; #readyReject; #closed = false;

  constructor(session, name) {
    this.#session = session;
    this.name = name;
    this._temp = false;
    this._tempUses = 0;
    this.ready = new Promise((res, rej) => { this.#readyResolve = res; this.#readyReject = rej; });
    this.ready.catch(noop);
  }

  /** records maps each record id to its value. Read-only for callers. */
  get records() { return this.#state.records; }
  /** version is the collection version this view includes (0 before the first sync). */
  get version() { return this.#state.version; }
  /** epoch names the history the view follows (null before the first sync). */
  get epoch() { return this.#state.epoch; }
  /** synced tells whether the view has received its first state. */
  get synced() { return this.#state.epoch !== null; }

  /** get returns the value of record id, or undefined. */
  get(id) { return this.#state.records.get(id); }

  /** record returns {id, value, version} of record id (version: the commit that last wrote it), or undefined. */
  record(id) {
    const st = this.#state;
    return st.records.has(id) ? { id, value: st.records.get(id), version: st.versions.get(id) } : undefined;
  }

  /** subscribe calls fn with each change; returns the unsubscribe function. */
  subscribe(fn) {
    this.#subs.add(fn);
    return () => { this.#subs.delete(fn); };
  }

  /**
   * waitFor resolves once the view includes version (or has moved to another
   * epoch, whose snapshot includes everything durable).
   */
  waitFor(version, { signal } = {}) {
    if (this.#closed) return Promise.reject(new ViewsyncError('closed', `view ${this.name} closed`));
    const startEpoch = this.#state.epoch;
    if (this.#done(version, startEpoch)) return Promise.resolve(this.#state.version);
    return new Promise((resolve, reject) => {
      const w = { version, epoch: startEpoch, resolve, reject };
      if (signal) {
        if (signal.aborted) return reject(signal.reason);
        signal.addEventListener('abort', () => { this.#waiters.delete(w); reject(signal.reason); }, { once: true });
      }
      this.#waiters.add(w);
    });
  }

  /** put writes value under id; resolves the commit's version. ifVersion: 0 = create only, V = only if at V. */
  async put(id, value, { ifVersion } = {}) {
    checkId(id);
    const ifs = ifVersion == null ? undefined : { [id]: ifVersion };
    const viaWS = await this.#commitWS([{ op: 'put', id, value }], ifs);
    if (viaWS !== null) return viaWS;
    if (isDotId(id)) return this.#commitHTTP([{ op: 'put', id, value }], ifs);
    const r = await this.#session._json('PUT', this.#recordPath(id), { body: value, headers: preconditions(ifVersion) });
    return r.version;
  }

  /** patch applies a JSON merge patch (RFC 7396) to record id, over HTTP; resolves the version. */
  async patch(id, patch, { ifVersion } = {}) {
    checkId(id);
    if (isDotId(id)) {
      // No URL can name this record: merge here, write with a precondition.
      let rec = this.record(id);
      if (!rec || (ifVersion != null && rec.version < ifVersion)) {
        const snap = await this.#session._json('GET', `/v1/collections/${this.name}`);
        rec = (snap.records || []).find((r) => r.id === id);
      }
      if (!rec) throw new ViewsyncError('not_found', `record ${JSON.stringify(id)} does not exist`, 404);
      if (ifVersion != null && ifVersion !== rec.version) throw new ViewsyncError('precondition_failed', `record ${JSON.stringify(id)} is at version ${rec.version}`);
      return this.#commitHTTP([{ op: 'put', id, value: mergePatch(rec.value, patch) }], { [id]: rec.version });
    }
    const r = await this.#session._json('PATCH', this.#recordPath(id), {
      body: patch, contentType: 'application/merge-patch+json', headers: preconditions(ifVersion),
    });
    return r.version;
  }

  /** delete deletes record id; resolves the version. */
  async delete(id, { ifVersion } = {}) {
    checkId(id);
    const ifs = ifVersion == null ? undefined : { [id]: ifVersion };
    const viaWS = await this.#commitWS([{ op: 'delete', id }], ifs);
    if (viaWS !== null) return viaWS;
    if (isDotId(id)) return this.#commitHTTP([{ op: 'delete', id }], ifs);
    const r = await this.#session._json('DELETE', this.#recordPath(id), { headers: preconditions(ifVersion) });
    return r.version;
  }

  /** commit applies ops atomically if every precondition holds (id → version, 0 = must not exist); resolves the version. */
  async commit(ops, { if: ifs } = {}) {
    if (!Array.isArray(ops) || ops.length === 0) throw new ViewsyncError('bad_request', 'commit: ops must be a non-empty array');
    for (const op of ops) checkId(op?.id);
    const viaWS = await this.#commitWS(ops, ifs);
    if (viaWS !== null) return viaWS;
    return this.#commitHTTP(ops, ifs);
  }

  /** close stops following the collection; the state stays readable. */
  close() {
    if (this.#closed) return;
    this.#session._removeView(this);
    this._closed();
  }

  // --- internal ---

  _closed() {
    this.#closed = true;
    const err = new ViewsyncError('closed', `view ${this.name} closed`);
    for (const w of this.#waiters) w.reject(err);
    this.#waiters.clear();
    this.#readyReject(err);
  }

  get _isClosed() { return this.#closed; }

  /** _cursor is {epoch, after} to resume from, or null to start with a reset. */
  _cursor() {
    const st = this.#state;
    return st.epoch === null ? null : { epoch: st.epoch, after: st.version };
  }

  /** _apply applies one message and notifies; returns applyToState's status. */
  _apply(msg) {
    if (this.#closed) return 'stale';
    const r = applyToState(this.#state, msg);
    if (r.status !== 'applied') return r.status;
    const ev = r.event;
    for (const fn of [...this.#subs]) {
      try { fn(ev); } catch (e) { queueMicrotask(() => { throw e; }); }
    }
    this.#readyResolve(this.#state.version);
    for (const w of [...this.#waiters]) {
      if (this.#done(w.version, w.epoch)) {
        this.#waiters.delete(w);
        w.resolve(this.#state.version);
      }
    }
    return 'applied';
  }

  #done(version, epoch) {
    const st = this.#state;
    if (st.epoch === null) return false;
    return st.version >= version || (epoch !== null && st.epoch !== epoch);
  }

  #recordPath(id) {
    return `/v1/collections/${this.name}/records/${encodeId(id)}`;
  }

  async #commitWS(ops, ifs) {
    const msg = { type: 'commit', collection: this.name, ops };
    if (ifs && Object.keys(ifs).length) msg.if = ifs;
    const r = await this.#session._viaWS(msg);
    return r === null ? null : r.result?.version ?? r.versions?.[this.name];
  }

  async #commitHTTP(ops, ifs) {
    const body = { ops };
    if (ifs && Object.keys(ifs).length) body.if = ifs;
    const r = await this.#session._json('POST', `/v1/collections/${this.name}/commits`, { body });
    return r.version;
  }
}

function preconditions(ifVersion) {
  if (ifVersion == null) return {};
  if (ifVersion === 0) return { 'If-None-Match': '*' };
  return { 'If-Match': `"${ifVersion}"` };
}

// ---------------------------------------------------------------------------
// Links: one per session at a time. A link reports to the session with
// _linkUp (connected) and _linkDown (ended); the session decides on reconnect
// and fallback.

/** WSLink carries every subscription, write and call over one WebSocket. */
class WSLink {
  kind = 'ws';
  open = false;
  #s; #ws = null; #seq = 0; #pending = new Map(); #stopped = false;
  #openTimer = null; #received = new Map(); #acked = new Map(); #ackTimers = new Map(); #lastAck = new Map();

  constructor(session) { this.#s = session; }

  async start() {
    const s = this.#s;
    let url = s._base.replace(/^http/, 'ws') + '/v1/ws';
    const tok = await s._token();
    if (this.#stopped) return;
    if (tok) url += `?token=${encodeURIComponent(tok)}`;
    let ws;
    try {
      ws = new s._WS(url, SUBPROTOCOL);
    } catch (e) {
      queueMicrotask(() => s._linkDown(this, { transport: true, error: new ViewsyncError('network', `WebSocket: ${e?.message || e}`, 0) }));
      return;
    }
    this.#ws = ws;
    this.#openTimer = setTimeout(() => this.#fail({ transport: true }), s._opts.openTimeout);
    ws.onopen = () => {
      clearTimeout(this.#openTimer);
      if (this.#stopped) return;
      if (ws.protocol && ws.protocol !== SUBPROTOCOL) return this.#fail({ transport: true });
      this.open = true;
      s._linkUp(this);
      for (const v of s._views.values()) this.add(v);
    };
    ws.onmessage = (e) => this.#message(e.data);
    ws.onclose = (e) => {
      if (e?.code === CLOSE_TOKEN_EXPIRED) {
        // Reconnect at once: start() asks the token option for a fresh one.
        s._emit('error', new ViewsyncError('unauthorized', e.reason || 'token expired', 401));
        return this.#fail({ opened: true, immediate: true });
      }
      this.#fail({ opened: this.open, transport: !this.open });
    };
    // Browsers follow an error with a close event; some runtimes do not
    // when the handshake fails.
    ws.onerror = () => { if (!this.open) this.#fail({ transport: true }); };
  }

  stop() {
    if (this.#stopped) return;
    this.#stopped = true;
    this.open = false;
    clearTimeout(this.#openTimer);
    for (const t of this.#ackTimers.values()) clearTimeout(t);
    const err = new ViewsyncError('unavailable', 'connection lost before the answer; the request may or may not have been applied', 0);
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    if (this.#ws) {
      this.#ws.onopen = this.#ws.onmessage = this.#ws.onclose = this.#ws.onerror = null;
      try { this.#ws.close(1000); } catch { /* already closed */ }
    }
  }

  add(v) {
    if (!this.open) return;
    const cur = v._cursor();
    const msg = { type: 'subscribe', collection: v.name };
    if (cur) { msg.after = cur.after; msg.epoch = cur.epoch; }
    // A new subscription: acks start again from what it delivers.
    this.#received.delete(v.name);
    this.#acked.delete(v.name);
    this.#send(msg);
  }

  remove(v) {
    if (!this.open) return;
    this.#received.delete(v.name);
    this.#send({ type: 'unsubscribe', collection: v.name });
  }

  /** request sends a call or commit; null when it is too large for the socket. */
  request(msg) {
    const id = String(++this.#seq);
    const text = JSON.stringify({ ...msg, id });
    if (text.length > WS_MAX_SEND) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#send(text);
    });
  }

  #send(msg) {
    try {
      this.#ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
    } catch { /* the close event follows */ }
  }

  #fail(how) {
    if (this.#stopped) return;
    this.#s._linkDown(this, how);
  }

  #message(data) {
    let m;
    try { m = JSON.parse(data); } catch { return; }
    if (!m || typeof m !== 'object') return;
    switch (m.type) {
      case 'result': {
        const p = this.#pending.get(m.id);
        if (p) { this.#pending.delete(m.id); p.resolve({ result: m.result, versions: m.versions || {} }); }
        return;
      }
      case 'error': {
        const err = new ViewsyncError(m.code || 'internal', m.message || 'error', CODE_STATUS[m.code] ?? 0);
        const p = m.id != null && this.#pending.get(m.id);
        if (p) { this.#pending.delete(m.id); p.reject(err); } else this.#s._emit('error', err);
        return;
      }
      case 'reset': case 'catchup': case 'commit': {
        const v = this.#s._views.get(m.collection);
        if (!v) return; // a collection no longer followed
        this.#received.set(m.collection, Math.max(this.#received.get(m.collection) || 0, m.version));
        const st = v._apply(m);
        if (st === 'gap' || st === 'epoch') {
          // Never skip: start again from the cursor on a fresh connection.
          this.#fail({ opened: true, immediate: true });
          return;
        }
        if (st === 'applied') this.#scheduleAck(v);
      }
    }
  }

  // Acks tell the server what was rendered, at most every ACK_INTERVAL per
  // collection, never ahead of what this connection delivered.
  #scheduleAck(v) {
    const name = v.name;
    if (this.#ackTimers.has(name)) return;
    const wait = Math.max(0, (this.#lastAck.get(name) || 0) + ACK_INTERVAL - Date.now());
    this.#ackTimers.set(name, setTimeout(() => {
      this.#ackTimers.delete(name);
      if (!this.open || this.#s._views.get(name) !== v) return;
      const version = Math.min(v.version, this.#received.get(name) || 0);
      if (version <= (this.#acked.get(name) || 0) || version === 0) return;
      this.#acked.set(name, version);
      this.#lastAck.set(name, Date.now());
      this.#send({ type: 'ack', collection: name, version });
    }, wait));
  }
}

/**
 * HTTPLink is the base of the HTTP transports: one runner per view, each a
 * loop of requests. The link is up once any runner has connected; a runner
 * that fails ends the link, and the session reconnects every runner from its
 * view's cursor.
 */
class HTTPLink {
  open = false;
  // _proven is set once a runner got an answer: only then is a failure a
  // disconnection rather than a transport that does not work here.
  _proven = false;
  _s; _runners = new Map(); _stopped = false;

  constructor(session) { this._s = session; }

  start() {
    const views = [...this._s._views.values()];
    if (views.length === 0) {
      this.open = true;
      this._s._linkUp(this);
    }
    for (const v of views) this.add(v);
  }

  stop() {
    this._stopped = true;
    this.open = false;
    for (const ac of this._runners.values()) ac.abort();
    this._runners.clear();
  }

  add(v) {
    if (this._stopped || this._runners.has(v)) return;
    const ac = new AbortController();
    this._runners.set(v, ac);
    this._run(v, ac.signal).catch((e) => {
      if (ac.signal.aborted || this._stopped) return;
      this._fail(e);
    });
  }

  remove(v) {
    this._runners.get(v)?.abort();
    this._runners.delete(v);
  }

  _up() {
    this._proven = true;
    if (this.open || this._stopped) return;
    this.open = true;
    this._s._linkUp(this);
  }

  _fail(e) {
    if (this._stopped) return;
    const transport = !!e?.transport;
    const answered = e instanceof ViewsyncError && e.status > 0;
    this._s._linkDown(this, { opened: this._proven, transport, error: answered && !transport ? e : null });
  }

  /** _check turns an HTTP answer that is not 2xx into a thrown error. */
  async _check(res, what) {
    if (res.ok || res.status === 304) return;
    const err = await errorFrom(res, what);
    // Every valid collection exists, so 404 (like 405) means an endpoint
    // this server does not mount: another transport may work.
    if (res.status === 404 || res.status === 405 || res.status === 426) err.transport = true;
    throw err;
  }

  /** _resync fetches a snapshot into a view that has nothing yet. */
  async _snapshot(v, signal) {
    const path = `/v1/collections/${v.name}`;
    const res = await this._s._fetch('GET', path, { signal });
    await this._check(res, `GET ${path}`);
    const body = await res.json();
    v._apply({ type: 'reset', epoch: body.epoch, version: body.version, records: body.records || [] });
  }

  /** _changes fetches and applies what follows the view's cursor; returns how many commits it applied, -1 on a gap. */
  async _changes(v, cur, wait, signal) {
    let path = `/v1/collections/${v.name}/changes?after=${cur.after}&epoch=${encodeURIComponent(cur.epoch)}&client=${this._s.clientId}`;
    if (wait) path += `&wait=${wait}s`;
    const res = await this._s._fetch('GET', path, { signal });
    await this._check(res, `GET ${path}`);
    const msgs = changesMessages(await res.json());
    let n = 0;
    for (const m of msgs) {
      const st = v._apply(m);
      if (st === 'gap' || st === 'epoch') return -1;
      if (st === 'applied') n++;
    }
    return n;
  }
}

/**
 * SSELink: one event stream per collection (the contract's /events is per
 * collection), read with fetch() and our own parser rather than
 * EventSource: it sends the token as an Authorization header (not in the
 * URL, where logs keep it) and Last-Event-ID from the view's cursor on every
 * reconnect, sees status codes and error bodies, and reconnects under the
 * session's jittered backoff instead of EventSource's fixed retry.
 */
class SSELink extends HTTPLink {
  kind = 'sse';

  async _run(v, signal) {
    const o = this._s._opts;
    let resyncs = 0;
    for (;;) {
      const began = Date.now();
      const cur = v._cursor();
      const path = `/v1/collections/${v.name}/events`;
      const headers = { Accept: 'text/event-stream' };
      if (cur) headers['Last-Event-ID'] = `${cur.epoch}:${cur.after}`;
      const ac = new AbortController();
      let reader = null;
      // Cancel the body too: not every fetch ties it to the signal.
      const abort = () => { ac.abort(); reader?.cancel().catch(noop); };
      signal.addEventListener('abort', abort, { once: true });
      let watchdog = setTimeout(abort, o.openTimeout);
      let resync = false;
      try {
        const res = await this._s._fetch('GET', path, { headers, signal: ac.signal });
        await this._check(res, `GET ${path}`);
        const ct = res.headers.get('Content-Type') || '';
        if (!ct.startsWith('text/event-stream') || !res.body?.getReader) {
          throw Object.assign(new ViewsyncError('bad_response', `GET ${path}: not an event stream`, res.status), { transport: true });
        }
        reader = res.body.getReader();
        const dec = new TextDecoder();
        const parser = new SSEParser((e) => {
          if (resync) return;
          if (e.type === 'error') {
            // The server ends the stream (an expired token): say why and
            // reopen at once from the cursor, with a fresh token.
            let m = null;
            try { m = JSON.parse(e.data)?.error; } catch { /* not JSON */ }
            const code = m?.code || 'unavailable';
            this._s._emit('error', new ViewsyncError(code, m?.message || 'stream ended by the server', CODE_STATUS[code] ?? 0));
            resync = true;
            return;
          }
          if (e.type !== 'reset' && e.type !== 'catchup' && e.type !== 'commit') return;
          let m;
          try { m = JSON.parse(e.data); } catch { return; }
          m.type = e.type;
          if (e.type === 'commit') m.epoch = parseCursor(e.id)?.epoch ?? m.epoch;
          const st = v._apply(m);
          if (st === 'gap' || st === 'epoch') resync = true;
        });
        let gotBytes = false;
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          clearTimeout(watchdog);
          // The server writes a retry hint at once and pings an idle
          // stream: silence this long means a dead connection or a proxy
          // holding the stream back.
          watchdog = setTimeout(abort, o.idleTimeout);
          if (!gotBytes) { gotBytes = true; this._up(); }
          parser.push(dec.decode(value, { stream: true }));
          if (resync) { abort(); break; }
        }
        if (!resync) {
          if (signal.aborted) return;
          // A stream that ends before its first byte was held back: a
          // transport problem; one that ends later is reconnected.
          throw Object.assign(new ViewsyncError('network', `GET ${path}: stream ended`, 0), { transport: !gotBytes });
        }
      } catch (e) {
        if (signal.aborted) return;
        if (!resync) {
          if (e?.name === 'AbortError') throw Object.assign(new ViewsyncError('timeout', `GET ${path}: no data for too long`, 0), { transport: !this._proven });
          if (e?.code === 'network' && !this._proven) e.transport = true;
          throw e;
        }
      } finally {
        clearTimeout(watchdog);
        signal.removeEventListener('abort', abort);
      }
      // A gap: reopen this stream from the cursor, at once unless gaps
      // keep coming.
      resyncs = Date.now() - began > 5000 ? 0 : resyncs + 1;
      if (resyncs > 1) await sleep(backoff(resyncs, o.backoffBase, o.backoffCap), signal);
      if (signal.aborted) return;
    }
  }
}

/** LongPollLink: GET …/changes with wait, one request outstanding per collection. */
class LongPollLink extends HTTPLink {
  kind = 'longpoll';

  async _run(v, signal) {
    let wait = this._s._opts.longPollWait;
    let gaps = 0;
    while (!signal.aborted) {
      const cur = v._cursor();
      const ac = AbortSignal.any ? AbortSignal.any([signal, AbortSignal.timeout((wait + 15) * 1000)]) : signal;
      try {
        if (!cur) await this._snapshot(v, ac);
        else if (await this._changes(v, cur, wait, ac) < 0) {
          if (++gaps > 1) await sleep(backoff(gaps, 250, 5000), signal);
          continue;
        }
      } catch (e) {
        if (signal.aborted) return;
        if (e?.code === 'bad_request' && /\bwait\b/.test(e.message) && wait > 1) {
          wait = Math.max(1, Math.floor(wait / 2)); // over the server's --max-wait
          continue;
        }
        if (e?.name === 'TimeoutError' || e?.name === 'AbortError') throw new ViewsyncError('timeout', 'long-poll timed out', 0);
        if (e?.code === 'network' && !this._proven) e.transport = true;
        throw e;
      }
      gaps = 0;
      this._up();
    }
  }
}

/**
 * PollLink: the seed's cheap "am I stale?" — GET …/version with
 * If-None-Match every pollInterval; only when it moved, GET …/changes.
 */
class PollLink extends HTTPLink {
  kind = 'poll';

  async _run(v, signal) {
    const interval = this._s._opts.pollInterval;
    while (!signal.aborted) {
      try {
        const cur = v._cursor();
        if (!cur) await this._snapshot(v, signal);
        else {
          const path = `/v1/collections/${v.name}/version`;
          const res = await this._s._fetch('GET', path, { headers: { 'If-None-Match': `"${cur.epoch}:${cur.after}"` }, signal });
          await this._check(res, `GET ${path}`);
          if (res.status !== 304) {
            const head = await res.json();
            if (head.epoch !== cur.epoch || head.version > cur.after) {
              // Page through until caught up; a gap starts again from the cursor.
              for (let c = v._cursor(); c && (c.epoch !== head.epoch || c.after < head.version); c = v._cursor()) {
                if (await this._changes(v, c, 0, signal) <= 0) break;
              }
            }
          }
        }
      } catch (e) {
        if (signal.aborted) return;
        if (e?.code === 'network' && !this._proven) e.transport = true;
        throw e;
      }
      this._up();
      await sleep(interval, signal);
    }
  }
}

// ---------------------------------------------------------------------------
// DOM binding

/**
 * bindTable renders a view into container, one row per record, keyed by id,
 * and patches rows in place. It never overwrites a control (an element with
 * data-field="path") that has focus or that the user edited and has not saved;
 * a remote change to a field being edited marks the row as conflicting. See
 * viewsync.d.ts for the options and the row life cycle.
 */
export function bindTable(view, options) {
  const {
    container, render, update, filter, onConflict, onError, onSaved,
    sort = (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
    read = readControl, write = writeControl, validate, keys = true,
  } = options;
  if (!container || typeof render !== 'function') throw new ViewsyncError('bad_request', 'bindTable: container and render are required');
  const doc = container.ownerDocument;
  const rows = new Map(); // id → row
  const byEl = new WeakMap(); // row element → row
  const shown = new WeakMap(); // control → value last written into it
  container.replaceChildren();

  const fieldsOf = (row) => row.el.querySelectorAll('[data-field]');
  const control = (row, f) => [...fieldsOf(row)].find((c) => c.dataset.field === f);
  const focused = (c) => doc.activeElement === c;
  const visible = (rec) => rec && (!filter || filter(rec));

  function put(c, v) {
    shown.set(c, v);
    c.classList.remove('vs-stale');
    write(c, v);
  }

  function fill(row, force) {
    const rec = row.rec;
    if (!rec) return;
    for (const c of fieldsOf(row)) {
      const f = c.dataset.field;
      if (row.dirty.has(f)) continue;
      const v = getPath(rec.value, f);
      if (!force && shown.has(c) && jsonEqual(shown.get(c), v)) {
        c.classList.remove('vs-stale');
        continue;
      }
      if (!force && focused(c)) {
        c.classList.add('vs-stale'); // shown when it loses focus
        continue;
      }
      put(c, v);
    }
  }

  function info(row) {
    return { dirty: [...row.dirty.keys()], conflict: row.conflict, saving: row.saving };
  }

  function mark(row) {
    const { el, dirty, conflict } = row;
    el.classList.toggle('vs-dirty', dirty.size > 0);
    el.classList.toggle('vs-conflict', !!conflict);
    el.classList.toggle('vs-saving', row.saving);
    if (dirty.size) el.dataset.dirty = [...dirty.keys()].join(' ');
    else delete el.dataset.dirty;
    if (conflict) el.dataset.conflict = conflict.deleted ? 'deleted' : conflict.fields.join(' ');
    else delete el.dataset.conflict;
    for (const c of fieldsOf(row)) {
      const f = c.dataset.field;
      c.classList.toggle('vs-dirty', dirty.has(f));
      c.classList.toggle('vs-conflict', !!conflict && (conflict.deleted || conflict.fields.includes(f)));
    }
  }

  function make(rec) {
    const out = render(rec);
    const el = out && out.nodeType === 1 ? out : cellsRow(doc, container, out?.cells || []);
    el.dataset.key = rec.id;
    const row = { id: rec.id, el, rec, last: rec, dirty: new Map(), conflict: null, saving: false };
    rows.set(rec.id, row);
    byEl.set(el, row);
    fill(row, true);
    update?.(el, rec, info(row));
    return row;
  }

  function drop(row) {
    rows.delete(row.id);
    row.el.remove();
  }

  // recheck decides whether the user's edits conflict with the record as it
  // now is: a dirty field conflicts when its remote value is no longer the
  // one the user started from (and is not what the user typed either).
  function recheck(row) {
    if (row.saving) return;
    const before = row.conflict;
    if (!row.rec) {
      row.conflict = row.dirty.size ? { deleted: true, fields: [...row.dirty.keys()], theirs: null } : null;
    } else {
      const fields = [];
      for (const [f, base] of row.dirty) {
        const remote = getPath(row.rec.value, f);
        const c = control(row, f);
        if (c && jsonEqual(remote, read(c))) {
          row.dirty.delete(f); // converged: theirs is what I typed
          shown.set(c, remote);
        } else if (!jsonEqual(remote, base)) fields.push(f);
      }
      row.conflict = fields.length ? { deleted: false, fields, theirs: row.rec } : null;
    }
    mark(row);
    if (before !== row.conflict && (before || row.conflict)) onConflict?.(row.el, row.conflict, row.rec);
  }

  function remote(id) {
    const rec = view.record(id);
    const row = rows.get(id);
    if (!visible(rec)) {
      if (!row) return false;
      if (row.dirty.size) {
        row.rec = null;
        recheck(row);
        return false;
      }
      drop(row);
      return false;
    }
    if (!row) {
      make(rec);
      return 'created';
    }
    row.rec = rec;
    row.last = rec;
    if (row.dirty.size || row.conflict) recheck(row);
    fill(row, false);
    update?.(row.el, rec, info(row));
    return 'updated';
  }

  // order puts the rows in sort order, moving as few as it simply can and
  // never the row holding focus (moving it would blur the control).
  function order() {
    const want = [...rows.values()].sort((a, b) => sort(a.rec || a.last, b.rec || b.last)).map((r) => r.el);
    const pinned = want.find((el) => el.contains(doc.activeElement)) || null;
    let cur = container.firstElementChild;
    for (const el of want) {
      if (el === pinned && cur !== pinned) {
        while (cur && cur !== pinned) {
          const next = cur.nextElementSibling;
          container.insertBefore(cur, pinned.nextSibling);
          cur = next;
        }
      }
      if (cur === el) cur = cur.nextElementSibling;
      else container.insertBefore(el, cur);
    }
  }

  function onEvent(ev) {
    let reorder = ev.type === 'reset';
    for (const id of ev.changed) {
      const r = remote(id);
      if (r === 'created' || (r === 'updated' && options.sort)) reorder = true;
    }
    if (reorder) order();
  }

  async function save(id, { keepMine = false } = {}) {
    const row = rows.get(id);
    if (!row || row.saving || row.dirty.size === 0) return undefined;
    if (row.conflict && !keepMine) {
      throw new ViewsyncError('precondition_failed', `record ${JSON.stringify(id)} changed meanwhile: keep mine or take theirs`);
    }
    const mine = new Map();
    for (const f of row.dirty.keys()) {
      const c = control(row, f);
      if (c) mine.set(f, read(c));
    }
    let value = row.rec ? row.rec.value : row.last.value;
    for (const [f, x] of mine) value = setPath(value, f, x);
    // The app's own rules: a throw stops the save and reaches onError.
    validate?.(value, id);
    // Save: the version shown. Keep mine: the version the conflict showed,
    // which the user has seen and overrides; a newer one makes the server
    // refuse (412) and the conflict shows again.
    const ifVersion = row.rec ? row.rec.version : 0;
    row.saving = true;
    mark(row);
    try {
      const v = await view.put(id, value, { ifVersion });
      row.saving = false;
      // No other write to this record can land before ours: clear what was
      // saved, keep what the user typed since.
      for (const [f, x] of mine) {
        const c = control(row, f);
        if (c && jsonEqual(read(c), x)) {
          row.dirty.delete(f);
          shown.set(c, x);
        }
      }
      const had = row.conflict;
      row.conflict = null;
      mark(row);
      if (had) onConflict?.(row.el, null, row.rec);
      onSaved?.(row.el, v);
      return v;
    } catch (e) {
      row.saving = false;
      if (e?.code === 'precondition_failed') {
        // Changed meanwhile: show the conflict; the change itself arrives
        // soon and recheck narrows it to the fields that really differ.
        row.conflict = { deleted: !row.rec, fields: [...row.dirty.keys()], theirs: row.rec };
        mark(row);
        onConflict?.(row.el, row.conflict, row.rec);
        return undefined;
      }
      mark(row);
      throw e;
    }
  }

  function takeTheirs(id) {
    const row = rows.get(id);
    if (!row) return;
    const had = row.conflict;
    row.dirty.clear();
    row.conflict = null;
    if (!row.rec) {
      drop(row);
    } else {
      fill(row, true);
      mark(row);
      update?.(row.el, row.rec, info(row));
    }
    if (had) onConflict?.(row.el, null, row.rec);
  }

  async function remove(id) {
    return view.delete(id);
  }

  function report(e, id) {
    if (onError) onError(e, id);
    else queueMicrotask(() => { throw e; });
  }

  function rowOf(target) {
    for (let el = target; el && el !== container; el = el.parentElement) {
      const row = byEl.get(el);
      if (row) return row;
    }
    return null;
  }

  const listeners = {
    input(e) {
      const c = e.target.closest?.('[data-field]');
      const row = c && rowOf(c);
      if (!row) return;
      const f = c.dataset.field;
      const base = row.dirty.has(f) ? row.dirty.get(f) : shown.has(c) ? shown.get(c) : getPath(row.last.value, f);
      if (jsonEqual(read(c), base)) row.dirty.delete(f);
      else row.dirty.set(f, base);
      recheck(row);
    },
    focusout(e) {
      const c = e.target.closest?.('[data-field]');
      const row = c && rowOf(c);
      if (row && row.rec && !row.dirty.has(c.dataset.field)) fill(row, false);
    },
    click(e) {
      const b = e.target.closest?.('[data-action]');
      const row = b && rowOf(b);
      if (!row) return;
      const act = b.dataset.action;
      if (act === 'save') save(row.id).catch((err) => report(err, row.id));
      else if (act === 'keep-mine') save(row.id, { keepMine: true }).catch((err) => report(err, row.id));
      else if (act === 'take-theirs' || act === 'discard') takeTheirs(row.id);
      else if (act === 'delete') remove(row.id).catch((err) => report(err, row.id));
      else return;
      e.preventDefault();
    },
    keydown(e) {
      if (!keys) return;
      const c = e.target.closest?.('[data-field]');
      const row = c && rowOf(c);
      if (!row) return;
      if (e.key === 'Enter' && c.tagName !== 'TEXTAREA' && !e.isComposing && row.dirty.size && !row.conflict) {
        e.preventDefault();
        save(row.id).catch((err) => report(err, row.id));
      } else if (e.key === 'Escape' && row.dirty.size) {
        e.preventDefault();
        takeTheirs(row.id);
      }
    },
  };
  for (const [t, fn] of Object.entries(listeners)) container.addEventListener(t, fn);

  for (const id of view.records.keys()) {
    const rec = view.record(id);
    if (visible(rec)) make(rec);
  }
  order();
  const unsubscribe = view.subscribe(onEvent);

  return {
    save: (id) => save(id),
    keepMine: (id) => save(id, { keepMine: true }),
    takeTheirs,
    discard: takeTheirs,
    remove,
    row: (id) => rows.get(id)?.el,
    state: (id) => { const r = rows.get(id); return r ? info(r) : undefined; },
    isDirty: (id) => (rows.get(id)?.dirty.size || 0) > 0,
    destroy() {
      unsubscribe();
      for (const [t, fn] of Object.entries(listeners)) container.removeEventListener(t, fn);
    },
  };
}

function cellsRow(doc, container, cells) {
  const table = /^(TBODY|THEAD|TFOOT|TABLE)$/.test(container.tagName);
  const el = doc.createElement(table ? 'tr' : 'div');
  for (const cell of cells) {
    const td = doc.createElement(table ? 'td' : 'div');
    if (cell && typeof cell === 'object' && cell.nodeType) td.append(cell);
    else td.textContent = cell == null ? '' : String(cell);
    el.append(td);
  }
  return el;
}

/** readControl reads a control's value as JSON: checkbox → boolean, number → number (empty → null), else string. */
const isControl = (c) => /^(INPUT|TEXTAREA|SELECT)$/.test(c.tagName);

function readControl(c) {
  if (!isControl(c)) return c.textContent;
  if (c.type === 'checkbox') return c.checked;
  if (c.type === 'number' || c.dataset.type === 'number') {
    if (c.value.trim() === '') return null;
    const n = Number(c.value);
    return Number.isFinite(n) ? n : c.value;
  }
  return c.value;
}

/** writeControl shows a JSON value in a control, or as the text of any other element. */
function writeControl(c, v) {
  const s = v == null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  if (c.type === 'checkbox') c.checked = !!v;
  else if (isControl(c)) { if (c.value !== s) c.value = s; }
  else c.textContent = s;
}

/** _internal exposes the pure parts for tests. Not a stable API. */
export const _internal = {
  SSEParser, backoff, encodeId, isDotId, parseCursor, applyToState, newState,
  changesMessages, mergePatch, jsonEqual, getPath, setPath, errorFrom, preconditions,
  readControl, writeControl, CODE_STATUS,
};
