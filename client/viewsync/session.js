// The session: one client's connection to a server, its views and calls.
import { ViewsyncError, errorFrom } from './errors.js';
import { canonicalJSON, deepFreeze } from './json.js';
import { LongPollLink } from './longpoll.js';
import { NDJSONLink } from './ndjson.js';
import { Persistence, publicWrite } from './persist.js';
import { PollLink } from './poll.js';
import { SSELink } from './sse.js';
import { backoff, checkName, encodeId, NAME_RE, noop } from './util.js';
import { View } from './view.js';
import { WSLink } from './ws.js';

/**
 * @typedef {import('../viewsync.js').JSONValue} JSONValue
 * @typedef {import('../viewsync.js').ConnectOptions} ConnectOptions
 * @typedef {import('../viewsync.js').Status} Status
 * @typedef {import('../viewsync.js').ConnectionState} ConnectionState
 * @typedef {import('../viewsync.js').Transport} Transport
 * @typedef {import('../viewsync.js').Where} Where
 * @typedef {import('../viewsync.js').CollectionOptions} CollectionOptions
 * @typedef {import('../viewsync.js').SyncStatus} SyncStatus
 * @typedef {import('../viewsync.js').OutboxEvent} OutboxEvent
 * @typedef {{status: Status, error: ViewsyncError, sync: SyncStatus, outbox: OutboxEvent}} Events
 */

/**
 * A link is the session's connection over one transport: WSLink, or an
 * HTTPLink with one runner per view. One at a time; it reports to the
 * session with _linkUp (connected) and _linkDown (ended), and the session
 * decides on reconnect and fallback.
 * @typedef {object} Link
 * @property {Transport} kind
 * @property {boolean} open
 * @property {() => void | Promise<void>} start
 * @property {() => void} stop
 * @property {(v: View<any>) => void} add starts following a view
 * @property {(v: View<any>) => void} remove stops following a view
 */

/**
 * How a link ended (see _linkDown).
 * @typedef {object} Down
 * @property {boolean} [opened] it had connected
 * @property {boolean} [transport] a failure another transport might not have
 * @property {ViewsyncError | null} [error] reported to 'error' listeners
 * @property {boolean} [immediate] reconnect at once (first attempt)
 */

/**
 * Options of one HTTP request (Session._fetch).
 * @typedef {object} RequestOptions
 * @property {unknown} [body] sent as JSON
 * @property {string} [contentType] of the body; default application/json
 * @property {Record<string, string>} [headers]
 * @property {AbortSignal} [signal]
 */

const CALL_RE = /^[A-Za-z0-9_.-]{1,64}$/;
/**
 * The transports 'auto' tries, in order; 'sse' means NDJSON when there is a
 * token (see #kind).
 * @type {Transport[]}
 */
const ORDER = ['ws', 'sse', 'longpoll', 'poll'];
/** @type {Record<Transport, new (s: Session) => Link>} */
const LINKS = { ws: WSLink, sse: SSELink, ndjson: NDJSONLink, longpoll: LongPollLink, poll: PollLink };
// Consecutive failures to connect, with the server reachable over plain
// HTTP, after which a transport is given up for the next one.
const FALLBACK_AFTER = 2;
// Default of the maxSilentAttempts option.
const MAX_SILENT_ATTEMPTS = 5;

/**
 * connect opens a session; see Session.
 * @param {ConnectOptions} [options]
 */
export function connect(options = {}) {
  return new Session(options);
}

/**
 * Session is one client's connection to a viewsync server: its views, its
 * single link (whichever transport works) and its calls.
 */
export class Session {
  /** @type {string} the server's base URL, without a trailing slash */
  #base;
  /** @type {ConnectOptions['token']} */
  #token;
  /** @type {typeof fetch} */
  #fetch;
  /** @type {typeof WebSocket | undefined} */
  #WS;
  #opts;
  /** @type {Map<string, View<any>>} views by key: the name for a whole collection, name?where=FILTER for a filtered view */
  #views = new Map();
  /** @type {Map<string, View<any>>} filtered views by WebSocket subscription id */
  #subs = new Map();
  #subSeq = 0; // the last subscription id given ("v1", "v2", …), never reused
  /** @type {{[K in keyof Events]: Set<(value: Events[K]) => void>}} */
  #listeners = { status: new Set(), error: new Set(), sync: new Set(), outbox: new Set() };
  /** @type {Map<View<any>, Promise<void>>} views whose cached state is being read: the link follows them once it is in */
  #loading = new Map();
  /** @type {SyncStatus} */
  #sync = { state: 'connecting', pending: 0 };
  /** @type {Transport[]} the transports to try, in order */
  #order;
  #auto = false; // the transport was not forced
  /** @type {boolean | null} whether the token option gave a token, last time it was asked (null: not asked yet) */
  #hasToken;
  #level = 0; // index in #order of the transport in use
  /** @type {Link | null} */
  #link = null;
  #attempt = 0; // reconnect attempts since the last success, for backoff
  #fails = 0; // failures of the current transport while HTTP works
  #heard = false; // the server answered (any HTTP status, or a WebSocket opened) since the current attempt began
  #silent = 0; // consecutive attempts that failed without any answer from the server
  /** @type {ViewsyncError | null} the 'unreachable' error reported for the current run of silent attempts */
  #unreachable = null;
  /** @type {ReturnType<typeof setTimeout> | undefined} the scheduled reconnect */
  #timer;
  #closed = false;
  #upAt = 0; // when the link last came up
  /** @type {Status} */
  #status;
  #clientId = globalThis.crypto?.randomUUID?.() ?? Math.random().toString(36).slice(2);
  #onOnline = () => { if (this.#timer !== undefined && !this.#link) this.#startNow(); };

  /** @param {ConnectOptions} [options] */
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
      maxSilentAttempts: options.maxSilentAttempts ?? MAX_SILENT_ATTEMPTS,
    };
    this.#hasToken = typeof this.#token === 'function' ? null : !!this.#token;
    const t = options.transport ?? 'auto';
    this.#auto = t === 'auto';
    if (t === 'auto') this.#order = ORDER.filter((k) => k !== 'ws' || typeof this.#WS === 'function');
    else if (Object.hasOwn(LINKS, t)) this.#order = [t];
    else throw new ViewsyncError('bad_request', `connect: unknown transport ${JSON.stringify(t)}; want ws, sse, ndjson, longpoll, poll or auto`);
    this.#status = { state: 'connecting', transport: this.#kind() };
    if (options.onStatus) this.on('status', options.onStatus);
    /** @type {Persistence | null} the cache and the outbox (connect({persist})) */
    this._persist = options.persist ? new Persistence(this, options.persist === true ? {} : options.persist) : null;
    globalThis.addEventListener?.('online', this.#onOnline);
    for (const name of options.collections || []) this.collection(name);
    this.#startNow();
  }


  /**
   * status is the current {state, transport}.
   * @returns {Status}
   */
  get status() { return { ...this.#status }; }

  /**
   * sync is what the page shows and what it has to send: {state, pending}
   * (see SyncStatus).
   * @returns {SyncStatus}
   */
  get sync() { return { ...this.#sync }; }

  /**
   * outbox lists the writes queued and not yet settled, in the order they
   * go (every tab's); empty without persist.
   * @returns {import('../viewsync.js').QueuedWrite[]}
   */
  get outbox() { return (this._persist?.writes ?? []).map(publicWrite); }

  /**
   * on listens to 'status' ({state, transport}) or 'error' (ViewsyncError) events; returns the unsubscribe function.
   * @param {keyof Events} type
   * @param {(value: any) => void} fn
   * @returns {() => void}
   */
  on(type, fn) {
    const set = /** @type {Set<(value: any) => void> | undefined} */ (this.#listeners[type]);
    if (!set) throw new ViewsyncError('bad_request', `unknown event ${JSON.stringify(type)}; want status, error, sync or outbox`);
    set.add(fn);
    return () => { set.delete(fn); };
  }

  /**
   * collection returns the live view of a collection, or with options.where
   * of its records that match the filter: the same object for the same name
   * and an equal filter (compared as JSON with sorted keys).
   * @template [T=JSONValue]
   * @param {string} name
   * @param {CollectionOptions} [options]
   * @returns {View<T>}
   */
  collection(name, options = {}) {
    checkName(name);
    const f = filterOf(options?.where);
    if (this.#closed) throw new ViewsyncError('closed', 'session closed');
    const key = f ? `${name}?where=${f.json}` : name;
    let v = this.#views.get(key);
    if (v) {
      v._temp = false;
      return v;
    }
    const id = f ? { where: f.where, whereJSON: f.json, key, sub: `v${++this.#subSeq}` } : undefined;
    const nv = /** @type {View<T>} */ (new View(this, name, id));
    this.#views.set(key, nv);
    if (nv._sub) this.#subs.set(nv._sub, nv);
    if (this.#unreachable) nv._unreachable(this.#unreachable);
    const p = this._persist;
    if (!p) {
      this.#link?.add(nv);
      return nv;
    }
    // Shown from the cache first, then followed from its cursor.
    this.#loading.set(nv, p.load(nv).then((c) => { if (c && !nv.synced) nv._fromCache(c); }, () => { /* no cache: a snapshot */ }).finally(() => {
      this.#loading.delete(nv);
      if (this.#views.get(key) !== nv) return;
      this.#link?.add(nv);
      if (this.#link?.open) nv._live();
      this._syncChanged();
    }));
    return nv;
  }

  /**
   * call runs a named server function with arg and resolves {result,
   * context} once every view of this session includes the versions the
   * answer lists (read-your-writes). context is handed back untouched.
   * @template [R=JSONValue]
   * @template [C=undefined]
   * @param {string} name
   * @param {JSONValue} [arg]
   * @param {C} [context]
   * With persist and options.queue, the call goes through the outbox (it
   * is sent, in order, once connected, also after a reload).
   * @param {{signal?: AbortSignal, queue?: boolean}} [options]
   * @returns {Promise<{result: R, context: C}>}
   */
  async call(name, arg, context, options = {}) {
    if (typeof name !== 'string' || !CALL_RE.test(name)) {
      throw new ViewsyncError('bad_request', `invalid call name ${JSON.stringify(name)}: want 1–64 of [A-Za-z0-9_.-]`);
    }
    const a = arg === undefined ? null : arg;
    const answer = (options.queue && this._persist ? await this._persist.enqueue({ kind: 'call', collection: '', name, arg: a }) : null)
      ?? (await this._viaWS({ type: 'call', name, arg: a }))
      ?? await this._json('POST', `/v1/calls/${encodeId(name)}`, { body: { arg: a }, signal: options.signal });
    await this.#waitVersions(answer.versions || {}, options.signal);
    return { result: answer.result, context: /** @type {C} */ (context) };
  }

  /** close ends the link and every view; pending waits reject with code "closed". */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    globalThis.removeEventListener?.('online', this.#onOnline);
    const link = this.#link;
    this.#link = null;
    link?.stop();
    this._persist?.close();
    for (const v of this.#views.values()) v._closed();
    this.#views.clear();
    this.#subs.clear();
    this.#setStatus('closed', this.#status.transport);
  }

  /**
   * #waitVersions resolves once each view includes its collection's
   * version (every view of it, filtered or not); a collection not open is
   * followed for the wait.
   * @param {Record<string, number>} versions
   * @param {AbortSignal} [signal]
   */
  async #waitVersions(versions, signal) {
    await Promise.all(Object.entries(versions).map(async ([name, version]) => {
      if (!NAME_RE.test(name)) return;
      let views = [...this.#views.values()].filter((v) => v.name === name);
      if (views.length === 0) {
        const t = this.collection(name);
        t._temp = true;
        views = [t];
      }
      await Promise.all(views.map(async (v) => {
        v._tempUses++;
        try {
          await v.waitFor(version, { signal });
        } finally {
          v._tempUses--;
          if (v._temp && v._tempUses === 0) v.close();
        }
      }));
    }));
  }

  // --- plumbing used by views and links (not part of the API) ---

  // The views the link follows: those whose cached state is in.
  get _views() {
    if (this.#loading.size === 0) return this.#views;
    return new Map([...this.#views].filter(([, v]) => !this.#loading.has(v)));
  }
  get _opts() { return this.#opts; }
  get _base() { return this.#base; }
  get _WS() { return this.#WS; }
  // _clientId names this session to the server: polls send it so that their
  // cursor counts as what this client has rendered (the server's
  // commit→visible metric).
  get _clientId() { return this.#clientId; }

  /**
   * _token returns the token to send, '' for none.
   * @returns {Promise<string>}
   */
  async _token() {
    const t = typeof this.#token === 'function' ? await this.#token() : this.#token;
    this.#hasToken = !!t;
    return t ? String(t) : '';
  }

  /**
   * @template {keyof Events} K
   * @param {K} type
   * @param {Events[K]} value
   */
  _emit(type, value) {
    for (const fn of [...this.#listeners[type]]) {
      try { fn(value); } catch (e) { queueMicrotask(() => { throw e; }); }
    }
  }

  /** @param {View<any>} v */
  _removeView(v) {
    this.#forget(v);
    this.#link?.remove(v);
  }

  /**
   * _viewFor finds the view a message of a collection is for: by its
   * subscription id (sub) when it has one (and of that collection, when
   * the message names one: an error may not), else the whole collection's.
   * @param {unknown} collection
   * @param {unknown} [sub]
   * @returns {View<any> | undefined}
   */
  _viewFor(collection, sub) {
    if (sub == null) return typeof collection === 'string' ? this.#views.get(collection) : undefined;
    const v = this.#subs.get(String(sub));
    return v && (collection == null || v.name === collection) ? v : undefined;
  }

  /**
   * _viewFailed ends a view the server refused to follow (its filter is
   * not valid): it is let go, its ready and waits reject with err, and
   * 'error' listeners hear of it. The link has already stopped following it.
   * @param {View<any>} v
   * @param {ViewsyncError} err
   */
  _viewFailed(v, err) {
    if (!this.#forget(v)) return;
    v._closed(err);
    this._emit('error', err);
  }

  /**
   * #forget drops a view from the session's maps; false when it was not there.
   * @param {View<any>} v
   */
  #forget(v) {
    if (v._sub && this.#subs.get(v._sub) === v) this.#subs.delete(v._sub);
    if (this.#views.get(v._key) !== v) return false;
    this.#views.delete(v._key);
    return true;
  }

  /**
   * _fetch sends one HTTP request with the token; it rejects only when there is no answer.
   * @param {string} method
   * @param {string} path from the base URL, starting with /
   * @param {RequestOptions} [options]
   * @returns {Promise<Response>}
   */
  async _fetch(method, path, { body, contentType = 'application/json', headers = {}, signal } = {}) {
    /** @type {Record<string, string>} */
    const h = { ...headers };
    const tok = await this._token();
    if (tok) h.Authorization = `Bearer ${tok}`;
    /** @type {RequestInit} */
    const init = { method, headers: h, signal, credentials: 'same-origin' };
    if (body !== undefined) {
      h['Content-Type'] = contentType;
      init.body = JSON.stringify(body);
    }
    try {
      const res = await this.#fetch(this.#base + path, init);
      this.#answered();
      return res;
    } catch (e) {
      if (e?.name === 'AbortError' || e?.name === 'TimeoutError') throw e;
      throw new ViewsyncError('network', `${method} ${path}: ${e?.message || e}`, 0);
    }
  }

  /**
   * _json sends a request and decodes its JSON answer, or throws its ViewsyncError.
   * @param {string} method
   * @param {string} path
   * @param {RequestOptions} [opts]
   * @returns {Promise<any>}
   */
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

  /**
   * _presence sends a view's presence body ({record?, state?}; no state: a
   * heartbeat, null: a leave): over the WebSocket, else over HTTP with the
   * session the view's stream gave it. Presence needs a push transport.
   * @param {View<any>} v
   * @param {string | null} session
   * @param {{record?: string, state?: JSONValue}} body
   * @returns {Promise<void>}
   */
  async _presence(v, session, body) {
    const link = this.#link;
    if (link instanceof WSLink && link.open) {
      await link.request({ type: 'presence', collection: v.name, ...body });
      return;
    }
    if (!session) throw new ViewsyncError('unavailable', `presence in ${v.name}: not connected over a push transport`, 0);
    const path = `/v1/collections/${v.name}/presence`;
    const res = await this._fetch('PUT', path, { body: { session, ...body } });
    if (!res.ok) throw await errorFrom(res, `PUT ${path}`);
  }

  /**
   * _presenceWanted follows v's presence from now on: its subscription is
   * made again with presence (from its cursor).
   * @param {View<any>} v
   */
  _presenceWanted(v) {
    const link = this.#link;
    if (!link || this.#views.get(v._key) !== v) return;
    if (!(link instanceof WSLink)) link.remove(v);
    link.add(v);
  }

  /**
   * _viaWS sends a request over the WebSocket when it is open and the message small; null otherwise.
   * @param {import('./ws.js').Request} msg
   */
  _viaWS(msg) {
    const link = this.#link;
    if (!(link instanceof WSLink) || !link.open) return Promise.resolve(null);
    return link.request(msg);
  }

  /**
   * @param {ConnectionState} state
   * @param {Transport} transport
   */
  #setStatus(state, transport) {
    if (this.#status.state === state && this.#status.transport === transport) return;
    this.#status = { state, transport };
    this._emit('status', { ...this.#status });
    this._syncChanged();
  }

  /**
   * _pendingChanged: the outbox changed (a write queued or settled, here
   * or in another tab): the views show it, the sync status counts it.
   */
  _pendingChanged() {
    const p = this._persist;
    if (p) p.prune(this.#views.values());
    for (const v of this.#views.values()) v._pendingChanged();
    this._syncChanged();
  }

  /** _syncChanged computes the sync status again and tells 'sync' listeners when it changed. */
  _syncChanged() {
    const pending = this._persist?.writes.length ?? 0;
    const st = this.#status.state;
    const cached = [...this.#views.values()].some((v) => v.cached);
    /** @type {SyncStatus['state']} */
    let state;
    if (st === 'closed') state = 'closed';
    else if (st === 'live') state = pending || cached ? 'syncing' : 'live';
    else if (pending) state = 'offline';
    else if (cached) state = 'cached';
    else state = st;
    if (state === this.#sync.state && pending === this.#sync.pending) return;
    this.#sync = { state, pending };
    this._emit('sync', { ...this.#sync });
  }

  #startNow() {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#closed) return;
    this.#heard = false;
    const kind = this.#kind();
    const link = new LINKS[kind](this);
    this.#link = link;
    this.#setStatus('connecting', kind);
    // Started after the current task, so that the views opened right after
    // connect() go into the first requests (with persist, once their
    // cached state is in, so that they resume from its cursor).
    queueMicrotask(() => {
      const go = () => {
        if (this.#link !== link) return;
        Promise.resolve(link.start()).catch((e) => this._linkDown(link, { error: e instanceof ViewsyncError ? e : null }));
      };
      if (this.#loading.size) Promise.allSettled([...this.#loading.values()]).then(go);
      else go();
    });
  }

  /**
   * #kind is the transport to try now: in place of SSE, NDJSON when there
   * is a token (the stream made for fetch and its Authorization header).
   * @returns {Transport}
   */
  #kind() {
    const k = this.#order[this.#level];
    return this.#auto && k === 'sse' && (this.#hasToken ?? true) ? 'ndjson' : k;
  }

  /**
   * _linkUp: link is connected.
   * @param {Link} link
   */
  _linkUp(link) {
    if (link !== this.#link) return;
    this.#answered();
    this.#fails = 0;
    this.#upAt = Date.now();
    for (const v of this._views.values()) v._live();
    this.#setStatus('live', link.kind);
    this._persist?.kick();
  }

  /**
   * _linkDown: link ended. opened tells whether it had connected; transport
   * marks a failure that another transport might not have (a WebSocket that
   * cannot open, an event stream a proxy breaks, an endpoint not mounted).
   * @param {Link} link
   * @param {Down} [how]
   */
  async _linkDown(link, { opened = false, transport = false, error = null, immediate = false } = {}) {
    if (link !== this.#link || this.#closed) return;
    this.#link = null;
    link.stop();
    if (error) this._emit('error', error);
    /** @type {ConnectionState} */
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
    if (!opened && !this.#heard) this.#silentFailure();
    this.#setStatus(state, link.kind);
    const delay = immediate && this.#attempt === 0 ? 0 : backoff(this.#attempt, this.#opts.backoffBase, this.#opts.backoffCap);
    this.#attempt++;
    this.#timer = setTimeout(() => this.#startNow(), delay);
  }

  /** #answered: the server answered (an HTTP response of any status, a WebSocket that opened). */
  #answered() {
    this.#heard = true;
    this.#silent = 0;
    this.#unreachable = null;
  }

  /**
   * #silentFailure counts an attempt that failed without any answer from
   * the server (network errors on every transport tried: a server down, or
   * a page of another origin that the server's CORS does not admit, which
   * the browser reports only in its console). After maxSilentAttempts in a
   * row it says so once: an 'unreachable' error, which also rejects the
   * ready of every view not yet synced. The session keeps retrying.
   */
  #silentFailure() {
    const max = this.#opts.maxSilentAttempts;
    if (++this.#silent < max || max <= 0 || this.#unreachable) return;
    const err = new ViewsyncError('unreachable', unreachableMessage(this.#base, this.#silent), 0);
    this.#unreachable = err;
    this._emit('error', err);
    for (const v of this.#views.values()) v._unreachable(err);
  }

  /** #httpWorks tells whether the server answers plain HTTP (any answer but an auth refusal). */
  async #httpWorks() {
    const name = this.#views.values().next().value?.name || 'viewsync.probe';
    try {
      const res = await this._fetch('GET', `/v1/collections/${name}/version`, { signal: AbortSignal.timeout?.(this.#opts.openTimeout) });
      res.body?.cancel?.().catch(noop);
      return res.status !== 401 && res.status !== 403 && res.status < 500;
    } catch {
      return false;
    }
  }
}

/**
 * filterOf checks a view's filter: a JSON object, or nothing (undefined,
 * null or {}: the whole collection). It returns a deep-frozen copy of it as
 * JSON (what JSON.stringify keeps of it) and its canonical JSON, or null.
 * @param {unknown} where
 * @returns {{where: Where, json: string} | null}
 */
function filterOf(where) {
  if (where == null) return null;
  /** @type {unknown} */
  let copy;
  try {
    copy = JSON.parse(JSON.stringify(where));
  } catch (e) {
    throw new ViewsyncError('bad_request', `collection: where is not JSON: ${e?.message || e}`);
  }
  if (copy === null || typeof copy !== 'object' || Array.isArray(copy)) {
    throw new ViewsyncError('bad_request', `collection: where must be a JSON object, like {"category":"lamp"}; got ${JSON.stringify(where) ?? typeof where}`);
  }
  if (Object.keys(copy).length === 0) return null;
  const w = /** @type {Where} */ (copy);
  return { where: deepFreeze(w), json: canonicalJSON(/** @type {JSONValue} */ (/** @type {unknown} */ (w))) };
}

/**
 * unreachableMessage says that base never answered, with what to check: the
 * server, and its --cors-origin when the page is on another origin (or the
 * page's origin is not known).
 * @param {string} base
 * @param {number} attempts
 */
function unreachableMessage(base, attempts) {
  const msg = `no answer from ${base} after ${attempts} attempts: is the server running`;
  const page = globalThis.location?.origin;
  let server = '';
  try { server = new URL(base).origin; } catch { /* keep '' */ }
  if (page && page !== 'null' && page === server) return `${msg}?`;
  const origin = page && page !== 'null' ? page : "this page's origin";
  return `${msg}, and if this page is on another origin, was the server started with --cors-origin ${origin}?`;
}
