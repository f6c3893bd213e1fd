// The HTTP transports' common part: one request loop per view.
import { ViewsyncError, errorFrom } from './errors.js';
import { changesMessages } from './state.js';

/**
 * @typedef {import('./session.js').Session} Session
 * @typedef {import('./view.js').View<any>} View
 * @typedef {{epoch: string, after: number}} Cursor
 */

/**
 * HTTPLink is the base of the HTTP transports: one runner per view, each a
 * loop of requests. The link is up once any runner has connected; a runner
 * that fails ends the link, and the session reconnects every runner from its
 * view's cursor.
 */
export class HTTPLink {
  open = false;
  // _proven is set once a runner got an answer: only then is a failure a
  // disconnection rather than a transport that does not work here.
  _proven = false;
  /** @type {Map<View, AbortController>} */
  _runners = new Map();
  _stopped = false;

  /** @param {Session} session */
  constructor(session) {
    this._s = session;
  }

  /**
   * kind names the transport; each transport implements it.
   * @abstract
   * @returns {import('../viewsync.js').Transport}
   */
  get kind() {
    throw new Error('HTTPLink.kind: implemented by each transport');
  }

  /**
   * _run follows one view until signal aborts; it throws to end the link.
   * Each transport implements it.
   * @abstract
   * @param {View} v
   * @param {AbortSignal} signal
   * @returns {Promise<void>}
   */
  async _run(v, signal) { // eslint-disable-line no-unused-vars
    throw new Error('HTTPLink._run: implemented by each transport');
  }

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

  /** @param {View} v */
  add(v) {
    if (this._stopped || this._runners.has(v)) return;
    const ac = new AbortController();
    this._runners.set(v, ac);
    this._run(v, ac.signal).catch((e) => {
      if (ac.signal.aborted || this._stopped) return;
      if (v.where && e instanceof ViewsyncError && e.code === 'bad_request' && e.status === 400) {
        // The server does not take this view's filter: that ends the view,
        // not the link, which works (the server answered).
        this._runners.delete(v);
        this._up();
        this._s._viewFailed(v, e);
        return;
      }
      this._fail(e);
    });
  }

  /** @param {View} v */
  remove(v) {
    this._runners.get(v)?.abort();
    this._runners.delete(v);
  }

  /** _up: a runner got an answer, so the link works here, and is live. */
  _up() {
    this._proven = true;
    this._live();
  }

  /** _live: a runner is connected (a stream's head arrived); the link is live. */
  _live() {
    if (this.open || this._stopped) return;
    this.open = true;
    this._s._linkUp(this);
  }

  /** @param {any} e */
  _fail(e) {
    if (this._stopped) return;
    const transport = !!e?.transport;
    const answered = e instanceof ViewsyncError && e.status > 0;
    this._s._linkDown(this, { opened: this._proven, transport, error: answered && !transport ? e : null });
  }

  /**
   * _check turns an HTTP answer that is not 2xx into a thrown error.
   * @param {Response} res
   * @param {string} what the request, for the message
   */
  async _check(res, what) {
    if (res.ok || res.status === 304) return;
    const err = await errorFrom(res, what);
    // Every valid collection exists, so 404 (like 405) means an endpoint
    // this server does not mount: another transport may work.
    if (res.status === 404 || res.status === 405 || res.status === 426) throw Object.assign(err, { transport: true });
    throw err;
  }

  /**
   * _snapshot fetches a snapshot into a view that has nothing yet.
   * @param {View} v
   * @param {AbortSignal} signal
   */
  async _snapshot(v, signal) {
    const where = v._whereQuery();
    const path = `/v1/collections/${v.name}${where ? `?${where}` : ''}`;
    const res = await this._s._fetch('GET', path, { signal });
    await this._check(res, `GET ${path}`);
    const body = await res.json();
    v._apply({ type: 'reset', epoch: body.epoch, version: body.version, records: body.records || [] });
  }

  /**
   * _changes fetches and applies what follows the view's cursor; returns
   * how many commits it applied (a filtered view's progress to the answer's
   * version counts as one), -1 on a gap.
   * @param {View} v
   * @param {Cursor} cur
   * @param {number} wait seconds the server may hold the request (0: answer at once)
   * @param {AbortSignal} signal
   * @returns {Promise<number>}
   */
  async _changes(v, cur, wait, signal) {
    let path = `/v1/collections/${v.name}/changes?after=${cur.after}&epoch=${encodeURIComponent(cur.epoch)}&client=${this._s._clientId}`;
    if (wait) path += `&wait=${wait}s`;
    const where = v._whereQuery();
    if (where) path += `&${where}`;
    const res = await this._s._fetch('GET', path, { signal });
    await this._check(res, `GET ${path}`);
    const msgs = changesMessages(await res.json(), { filtered: !!v.where });
    let n = 0;
    for (const m of msgs) {
      const st = v._apply(m);
      if (st === 'gap' || st === 'epoch') return -1;
      if (st === 'applied') n++;
    }
    return n;
  }
}
