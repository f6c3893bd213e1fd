// The WebSocket transport: every subscription, write and call on one connection.
import { CODE_STATUS, ViewsyncError } from './errors.js';

const SUBPROTOCOL = 'viewsync.v1';
/** The WebSocket close status of a connection whose token expired. */
const CLOSE_TOKEN_EXPIRED = 4401;
// Writes and calls larger than this go over HTTP, which answers an oversize
// body with a clean 413 instead of closing the shared WebSocket (1009).
const WS_MAX_SEND = 64 * 1024;
// Acks go at most this often per subscription (ms).
const ACK_INTERVAL = 250;

/**
 * @typedef {import('../viewsync.js').JSONValue} JSONValue
 * @typedef {import('./session.js').Session} Session
 * @typedef {import('./session.js').Down} Down
 * @typedef {import('./view.js').View<any>} View
 */

/**
 * A request the session sends over the socket: a call, a commit, or a
 * presence (a set, heartbeat or leave).
 * @typedef {{type: 'call', name: string, arg: JSONValue}
 *   | {type: 'commit', collection: string, ops: import('../viewsync.js').Op[], if?: Record<string, number>}
 *   | {type: 'presence', collection: string, record?: string, state?: JSONValue}} Request
 */

/**
 * The answer to a request.
 * @typedef {{result: any, versions: Record<string, number>}} Answer
 */

/** WSLink carries every subscription, write and call over one WebSocket. */
export class WSLink {
  /** @type {'ws'} */
  kind = 'ws';
  open = false;
  /** @type {Session} */
  #s;
  /** @type {WebSocket | null} */
  #ws = null;
  #seq = 0;
  /** @type {Map<string, {resolve: (a: Answer) => void, reject: (e: ViewsyncError) => void}>} requests by id */
  #pending = new Map();
  #stopped = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #openTimer;
  // Per view (one subscription each): the highest version this connection
  // delivered, the version last acked, the pending ack and when the last
  // one went.
  /** @type {Map<View, number>} */
  #received = new Map();
  /** @type {Map<View, number>} */
  #acked = new Map();
  /** @type {Map<View, ReturnType<typeof setTimeout>>} */
  #ackTimers = new Map();
  /** @type {Map<View, number>} */
  #lastAck = new Map();
  /** @type {Set<View>} filtered views subscribed to that have had no message yet: an error naming their sub answers the subscribe */
  #subscribing = new Set();
  /** @type {Set<View>} views whose subscribe goes at the end of the current task, once for all the adds of it */
  #toSubscribe = new Set();
  /** @type {Set<View>} views whose subscribe went */
  #subscribed = new Set();

  /** @param {Session} session */
  constructor(session) { this.#s = session; }

  async start() {
    const s = this.#s;
    let url = s._base.replace(/^http/, 'ws') + '/v1/ws';
    const tok = await s._token();
    if (this.#stopped) return;
    if (tok) url += `?token=${encodeURIComponent(tok)}`;
    const WS = s._WS;
    /** @type {WebSocket} */
    let ws;
    try {
      if (!WS) throw new Error('no WebSocket available');
      ws = new WS(url, SUBPROTOCOL);
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

  /**
   * add subscribes to a view: {"type":"subscribe","collection"}, and for a
   * filtered view its "sub" id and "where" filter; "after" and "epoch"
   * from its cursor; "presence" once the view follows presence. The
   * message goes at the end of the current task, so that a view opened
   * and then asked for its presence (bindTable) subscribes once.
   * @param {View} v
   */
  add(v) {
    if (!this.open || this.#toSubscribe.has(v)) return;
    this.#toSubscribe.add(v);
    queueMicrotask(() => {
      if (this.#toSubscribe.delete(v) && this.open && !this.#stopped) this.#subscribe(v);
    });
  }

  /** @param {View} v */
  #subscribe(v) {
    this.#subscribed.add(v);
    const cur = v._cursor();
    let text = `{"type":"subscribe",${this.#names(v)}`;
    if (v._whereJSON !== null) text += `,"where":${v._whereJSON}`; // sent as its canonical JSON
    if (cur) text += `,"after":${cur.after},"epoch":${JSON.stringify(cur.epoch)}`;
    if (v._presence) text += ',"presence":true';
    // A new subscription: acks start again from what it delivers.
    this.#received.delete(v);
    this.#acked.delete(v);
    if (v._sub !== null) this.#subscribing.add(v);
    this.#send(`${text}}`);
  }

  /** @param {View} v */
  remove(v) {
    this.#toSubscribe.delete(v);
    const sent = this.#subscribed.delete(v);
    this.#forget(v);
    if (!this.open || !sent) return;
    this.#send(`{"type":"unsubscribe",${this.#names(v)}}`);
  }

  /**
   * #names is the part of a message that names v's subscription:
   * "collection", and "sub" for a filtered view.
   * @param {View} v
   */
  #names(v) {
    const c = `"collection":${JSON.stringify(v.name)}`;
    return v._sub === null ? c : `${c},"sub":${JSON.stringify(v._sub)}`;
  }

  /** @param {View} v */
  #forget(v) {
    this.#subscribing.delete(v);
    clearTimeout(this.#ackTimers.get(v));
    this.#ackTimers.delete(v);
    this.#received.delete(v);
    this.#acked.delete(v);
    this.#lastAck.delete(v);
  }

  /**
   * request sends a call or commit; null when it is too large for the socket.
   * @param {Request} msg
   * @returns {Promise<Answer | null>}
   */
  request(msg) {
    const id = String(++this.#seq);
    const text = JSON.stringify({ ...msg, id });
    if (text.length > WS_MAX_SEND) return Promise.resolve(null);
    return new Promise((/** @type {(a: Answer) => void} */ resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#send(text);
    });
  }

  /** @param {string | object} msg */
  #send(msg) {
    try {
      this.#ws?.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
    } catch { /* the close event follows */ }
  }

  /** @param {Down} how */
  #fail(how) {
    if (this.#stopped) return;
    this.#s._linkDown(this, how);
  }

  /** @param {unknown} data */
  #message(data) {
    /** @type {any} */
    let m;
    try { m = JSON.parse(String(data)); } catch { return; }
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
        if (p) { this.#pending.delete(m.id); p.reject(err); return; }
        // An error answering a filtered view's subscribe names its sub: a
        // filter the server does not take ends the view. (Errors naming
        // the sub that answer an ack or an unsubscribe only get reported.)
        const v = m.sub != null && m.code === 'bad_request' ? this.#s._viewFor(m.collection, m.sub) : undefined;
        if (v && this.#subscribing.has(v)) {
          this.#forget(v);
          this.#s._viewFailed(v, err);
        } else this.#s._emit('error', err);
        return;
      }
      case 'presence':
        this.#s._viewFor(m.collection, m.sub)?._presence?._message(m);
        return;
      case 'reset': case 'catchup': case 'commit': case 'progress': {
        // A filtered view's messages name its sub; others the collection only.
        const v = this.#s._viewFor(m.collection, m.sub);
        if (!v) return; // a view no longer followed
        this.#subscribing.delete(v);
        if (typeof m.version === 'number') this.#received.set(v, Math.max(this.#received.get(v) || 0, m.version));
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
  // subscription, never ahead of what this connection delivered.
  /** @param {View} v */
  #scheduleAck(v) {
    if (this.#ackTimers.has(v)) return;
    const wait = Math.max(0, (this.#lastAck.get(v) || 0) + ACK_INTERVAL - Date.now());
    this.#ackTimers.set(v, setTimeout(() => {
      this.#ackTimers.delete(v);
      if (!this.open || this.#s._views.get(v._key) !== v) return;
      const version = Math.min(v.version, this.#received.get(v) || 0);
      if (version <= (this.#acked.get(v) || 0) || version === 0) return;
      this.#acked.set(v, version);
      this.#lastAck.set(v, Date.now());
      this.#send(`{"type":"ack",${this.#names(v)},"version":${version}}`);
    }, wait));
  }
}
