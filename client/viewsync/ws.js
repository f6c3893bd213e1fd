// The WebSocket transport: every subscription, write and call on one connection.
import { CODE_STATUS, ViewsyncError } from './errors.js';

const SUBPROTOCOL = 'viewsync.v1';
/** The WebSocket close status of a connection whose token expired. */
const CLOSE_TOKEN_EXPIRED = 4401;
// Writes and calls larger than this go over HTTP, which answers an oversize
// body with a clean 413 instead of closing the shared WebSocket (1009).
const WS_MAX_SEND = 64 * 1024;
// Acks go at most this often per collection (ms).
const ACK_INTERVAL = 250;

/**
 * @typedef {import('../viewsync.js').JSONValue} JSONValue
 * @typedef {import('./session.js').Session} Session
 * @typedef {import('./session.js').Down} Down
 * @typedef {import('./view.js').View<any>} View
 */

/**
 * A request the session sends over the socket: a call, or a commit.
 * @typedef {{type: 'call', name: string, arg: JSONValue}
 *   | {type: 'commit', collection: string, ops: import('../viewsync.js').Op[], if?: Record<string, number>}} Request
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
  // Per collection: the highest version this connection delivered, the
  // version last acked, the pending ack and when the last one went.
  /** @type {Map<string, number>} */
  #received = new Map();
  /** @type {Map<string, number>} */
  #acked = new Map();
  /** @type {Map<string, ReturnType<typeof setTimeout>>} */
  #ackTimers = new Map();
  /** @type {Map<string, number>} */
  #lastAck = new Map();

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

  /** @param {View} v */
  add(v) {
    if (!this.open) return;
    const cur = v._cursor();
    /** @type {{type: 'subscribe', collection: string, after?: number, epoch?: string}} */
    const msg = { type: 'subscribe', collection: v.name };
    if (cur) { msg.after = cur.after; msg.epoch = cur.epoch; }
    // A new subscription: acks start again from what it delivers.
    this.#received.delete(v.name);
    this.#acked.delete(v.name);
    this.#send(msg);
  }

  /** @param {View} v */
  remove(v) {
    if (!this.open) return;
    this.#received.delete(v.name);
    this.#send({ type: 'unsubscribe', collection: v.name });
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
  /** @param {View} v */
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
