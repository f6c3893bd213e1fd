// The live view of one collection, or of the records of one that match a
// filter, and its writes.
import { ViewsyncError } from './errors.js';
import { mergePatch } from './json.js';
import { Presence } from './presence.js';
import { applyToState, newState } from './state.js';
import { checkId, encodeId, isDotId, noop } from './util.js';

/**
 * @typedef {import('../viewsync.js').JSONValue} JSONValue
 * @typedef {import('../viewsync.js').Op} Op
 * @typedef {import('../viewsync.js').WriteOptions} WriteOptions
 * @typedef {import('./state.js').Message} Message
 * @typedef {'applied' | 'stale' | 'gap' | 'epoch'} ApplyStatus
 * @typedef {{version: number, epoch: string | null, resolve: (v: number) => void, reject: (e: unknown) => void}} Waiter
 */

/**
 * How the session names a view: its filter, the key it keeps it under and
 * its WebSocket subscription id (filtered views only).
 * @typedef {object} ViewId
 * @property {import('../viewsync.js').Where | null} where the filter, deep-frozen; null: the whole collection
 * @property {string | null} whereJSON the filter as sent: compact JSON, keys sorted
 * @property {string} key the name, or name?where=whereJSON
 * @property {string | null} sub the subscription id
 */

/**
 * View is the live state of one collection, or of its records that match a
 * filter (where): records (a Map id → value, kept in place so that a
 * reference to it stays valid), version and epoch. Values are JSON; T is
 * what the caller says they are.
 * @template [T=JSONValue]
 */
export class View {
  /** @type {import('./session.js').Session} */
  #session;
  #state = newState();
  /** @type {Set<(change: import('../viewsync.js').Change<T>) => void>} */
  #subs = new Set();
  /** @type {Set<Waiter>} */
  #waiters = new Set();
  /** @type {(version: number) => void} */
  #readyResolve = noop;
  /** @type {(err: unknown) => void} */
  #readyReject = noop;
  #closed = false;

  /**
   * @param {import('./session.js').Session} session
   * @param {string} name
   * @param {ViewId} [id] default: the whole collection
   */
  constructor(session, name, id) {
    this.#session = session;
    /** @readonly */
    this.name = name;
    /**
     * The filter (deep-frozen), null for the whole collection.
     * @readonly
     */
    this.where = id?.where ?? null;
    // How the session keys the view and the transports send its filter.
    this._key = id?.key ?? name;
    this._whereJSON = id?.whereJSON ?? null;
    this._sub = id?.sub ?? null;
    // A view the session opened only to wait for a call's versions, and how
    // many waits use it; it is closed after the last.
    this._temp = false;
    this._tempUses = 0;
    /** @type {Presence | null} the view's presence, once asked for */
    this._presence = null;
    /** @type {Promise<number>} */
    this.ready = new Promise((res, rej) => { this.#readyResolve = res; this.#readyReject = rej; });
    this.ready.catch(noop);
  }

  /**
   * records maps each record id to its value. Read-only for callers.
   * @returns {ReadonlyMap<string, T>}
   */
  get records() { return /** @type {Map<string, any>} */ (this.#state.records); }
  /** version is the collection version this view includes (0 before the first sync). */
  get version() { return this.#state.version; }
  /** epoch names the history the view follows (null before the first sync). */
  get epoch() { return this.#state.epoch; }
  /** synced tells whether the view has received its first state. */
  get synced() { return this.#state.epoch !== null; }
  /** session is the session the view belongs to. */
  get session() { return this.#session; }

  /**
   * presence is who is present in the view's collection, and this
   * client's own presence there (set, clear). The view follows it from
   * the first time it is asked for.
   * @returns {Presence}
   */
  get presence() {
    if (!this._presence) {
      this._presence = new Presence(this);
      if (!this.#closed) this.#session._presenceWanted(this);
    }
    return this._presence;
  }

  /**
   * get returns the value of record id, or undefined.
   * @param {string} id
   * @returns {T | undefined}
   */
  get(id) { return this.records.get(id); }

  /**
   * record returns {id, value, version} of record id (version: the commit that last wrote it), or undefined.
   * @param {string} id
   * @returns {import('../viewsync.js').RecordOf<T> | undefined}
   */
  record(id) {
    const st = this.#state;
    const version = st.versions.get(id);
    return version === undefined ? undefined : { id, value: /** @type {T} */ (this.records.get(id)), version };
  }

  /**
   * subscribe calls fn with each change; returns the unsubscribe function.
   * @param {(change: import('../viewsync.js').Change<T>) => void} fn
   * @returns {() => void}
   */
  subscribe(fn) {
    this.#subs.add(fn);
    return () => { this.#subs.delete(fn); };
  }

  /**
   * waitFor resolves once the view includes version (or has moved to another
   * epoch, whose snapshot includes everything durable).
   * @param {number} version
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<number>}
   */
  waitFor(version, { signal } = {}) {
    if (this.#closed) return Promise.reject(new ViewsyncError('closed', `view ${this.name} closed`));
    const startEpoch = this.#state.epoch;
    if (this.#done(version, startEpoch)) return Promise.resolve(this.#state.version);
    return new Promise((resolve, reject) => {
      /** @type {Waiter} */
      const w = { version, epoch: startEpoch, resolve, reject };
      if (signal) {
        if (signal.aborted) return reject(signal.reason);
        signal.addEventListener('abort', () => { this.#waiters.delete(w); reject(signal.reason); }, { once: true });
      }
      this.#waiters.add(w);
    });
  }

  /**
   * put writes value under id; resolves the commit's version. ifVersion: 0 = create only, V = only if at V.
   * @param {string} id
   * @param {T} value
   * @param {WriteOptions} [options]
   * @returns {Promise<number>}
   */
  async put(id, value, { ifVersion } = {}) {
    checkId(id);
    const ifs = ifVersion == null ? undefined : { [id]: ifVersion };
    /** @type {Op[]} */
    const ops = [{ op: 'put', id, value: /** @type {JSONValue} */ (value) }];
    const viaWS = await this.#commitWS(ops, ifs);
    if (viaWS !== null) return viaWS;
    if (isDotId(id)) return this.#commitHTTP(ops, ifs);
    const r = await this.#session._json('PUT', this.#recordPath(id), { body: value, headers: preconditions(ifVersion) });
    return r.version;
  }

  /**
   * patch applies a JSON merge patch (RFC 7396) to record id, over HTTP; resolves the version.
   * @param {string} id
   * @param {JSONValue} patch
   * @param {WriteOptions} [options]
   * @returns {Promise<number>}
   */
  async patch(id, patch, { ifVersion } = {}) {
    checkId(id);
    if (isDotId(id)) {
      // No URL can name this record: merge here, write with a precondition.
      /** @type {import('../viewsync.js').RecordOf<any> | undefined} */
      let rec = this.record(id);
      if (!rec || (ifVersion != null && rec.version < ifVersion)) {
        const snap = await this.#session._json('GET', `/v1/collections/${this.name}`);
        rec = (snap.records || []).find((/** @type {import('../viewsync.js').RecordOf} */ r) => r.id === id);
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

  /**
   * delete deletes record id; resolves the version.
   * @param {string} id
   * @param {WriteOptions} [options]
   * @returns {Promise<number>}
   */
  async delete(id, { ifVersion } = {}) {
    checkId(id);
    const ifs = ifVersion == null ? undefined : { [id]: ifVersion };
    const viaWS = await this.#commitWS([{ op: 'delete', id }], ifs);
    if (viaWS !== null) return viaWS;
    if (isDotId(id)) return this.#commitHTTP([{ op: 'delete', id }], ifs);
    const r = await this.#session._json('DELETE', this.#recordPath(id), { headers: preconditions(ifVersion) });
    return r.version;
  }

  /**
   * commit applies ops atomically if every precondition holds (id → version, 0 = must not exist); resolves the version.
   * @param {Op[]} ops
   * @param {{if?: Record<string, number>}} [options]
   * @returns {Promise<number>}
   */
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

  /**
   * _closed ends the view: pending waits, and ready if not resolved yet,
   * reject with err (default: closed; the server's refusal of a filter).
   * @param {ViewsyncError} [err]
   */
  _closed(err = new ViewsyncError('closed', `view ${this.name} closed`)) {
    this.#closed = true;
    this._presence?._close();
    for (const w of this.#waiters) w.reject(err);
    this.#waiters.clear();
    this.#readyReject(err);
  }

  /**
   * _whereQuery is the query parameter that sends the filter (where=…,
   * URL-encoded), '' for the whole collection.
   */
  _whereQuery() {
    return this._whereJSON === null ? '' : `where=${encodeURIComponent(this._whereJSON)}`;
  }

  /**
   * _unreachable rejects ready with err (the session's 'unreachable'), unless the view has synced.
   * @param {ViewsyncError} err
   */
  _unreachable(err) {
    if (!this.synced) this.#readyReject(err);
  }

  /**
   * _cursor is {epoch, after} to resume from, or null to start with a reset.
   * @returns {{epoch: string, after: number} | null}
   */
  _cursor() {
    const st = this.#state;
    return st.epoch === null ? null : { epoch: st.epoch, after: st.version };
  }

  /**
   * _apply applies one message and notifies (subscribers of a change, not
   * of a progress; waiters of both); returns applyToState's status.
   * @param {Message} msg
   * @returns {ApplyStatus}
   */
  _apply(msg) {
    if (this.#closed) return 'stale';
    const r = applyToState(this.#state, msg);
    if (r.status !== 'applied') return r.status;
    const ev = /** @type {import('../viewsync.js').Change<T> | null} */ (/** @type {unknown} */ (r.event));
    if (ev) {
      for (const fn of [...this.#subs]) {
        try { fn(ev); } catch (e) { queueMicrotask(() => { throw e; }); }
      }
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

  /**
   * @param {number} version
   * @param {string | null} epoch the epoch the wait began in
   */
  #done(version, epoch) {
    const st = this.#state;
    if (st.epoch === null) return false;
    return st.version >= version || (epoch !== null && st.epoch !== epoch);
  }

  /** @param {string} id */
  #recordPath(id) {
    return `/v1/collections/${this.name}/records/${encodeId(id)}`;
  }

  /**
   * #commitWS commits over the WebSocket; null when it is not open (or the message too large).
   * @param {Op[]} ops
   * @param {Record<string, number>} [ifs]
   * @returns {Promise<number | null>}
   */
  async #commitWS(ops, ifs) {
    /** @type {{type: 'commit', collection: string, ops: Op[], if?: Record<string, number>}} */
    const msg = { type: 'commit', collection: this.name, ops };
    if (ifs && Object.keys(ifs).length) msg.if = ifs;
    const r = await this.#session._viaWS(msg);
    return r === null ? null : r.result?.version ?? r.versions?.[this.name];
  }

  /**
   * @param {Op[]} ops
   * @param {Record<string, number>} [ifs]
   * @returns {Promise<number>}
   */
  async #commitHTTP(ops, ifs) {
    /** @type {{ops: Op[], if?: Record<string, number>}} */
    const body = { ops };
    if (ifs && Object.keys(ifs).length) body.if = ifs;
    const r = await this.#session._json('POST', `/v1/collections/${this.name}/commits`, { body });
    return r.version;
  }
}

/**
 * preconditions maps ifVersion to the headers of a single-record write.
 * @param {number | undefined} ifVersion
 * @returns {Record<string, string>}
 */
export function preconditions(ifVersion) {
  if (ifVersion == null) return {};
  if (ifVersion === 0) return { 'If-None-Match': '*' };
  return { 'If-Match': `"${ifVersion}"` };
}
