// The live view of one collection, or of the records of one that match a
// filter, and its writes.
import { ViewsyncError } from './errors.js';
import { getPath, jsonEqual, mergePatch } from './json.js';
import { opsOf, overlay } from './persist.js';
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
  // With persist: what the view shows (the server's state with the queued
  // writes over it), the ids a queued write touches, and whether the state
  // came from the cache and the server has not been heard since.
  /** @type {Map<string, any>} */
  #shown = new Map();
  /** @type {Set<string>} */
  #pendingIds = new Set();
  #cached = false;

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
  get records() { return /** @type {Map<string, any>} */ (this.#session._persist ? this.#shown : this.#state.records); }
  /**
   * cached tells whether the view shows the state it had in the cache and
   * has not heard from the server since (persist only).
   */
  get cached() { return this.#cached; }
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
    if (this.#session._persist) {
      if (!this.#shown.has(id)) return undefined;
      /** @type {import('../viewsync.js').RecordOf<T>} */
      const r = { id, value: this.#shown.get(id), version: st.versions.get(id) ?? 0 };
      if (this.#pendingIds.has(id)) r.pending = true;
      return r;
    }
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
  put(id, value, { ifVersion } = {}) {
    const ifs = ifVersion == null ? undefined : { [id]: ifVersion };
    return this.#queue(() => ({ kind: 'put', collection: this.name, id, value: /** @type {JSONValue} */ (value), ifs }), id)
      ?? this.#put(id, value, ifVersion, ifs);
  }

  /**
   * #queue puts a write in the outbox (persist), null without persist; an
   * invalid id rejects.
   * @param {() => Omit<import('./persist.js').Write, 'scope' | 'key' | 'queuedAt'>} write
   * @param {...unknown} ids
   * @returns {Promise<any> | null}
   */
  #queue(write, ...ids) {
    const q = this.#session._persist;
    if (!q) return null;
    try {
      for (const id of ids) checkId(id);
    } catch (e) {
      return Promise.reject(e);
    }
    return q.enqueue(write());
  }

  /**
   * @param {string} id
   * @param {T} value
   * @param {number | undefined} ifVersion
   * @param {Record<string, number> | undefined} ifs
   */
  async #put(id, value, ifVersion, ifs) {
    checkId(id);
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
  patch(id, patch, { ifVersion } = {}) {
    return (typeof id === 'string' && isDotId(id) ? null : this.#queue(() => ({ kind: 'patch', collection: this.name, id, value: patch, ifs: ifVersion == null ? undefined : { [id]: ifVersion } }), id))
      ?? this.#patch(id, patch, ifVersion);
  }

  /**
   * @param {string} id
   * @param {JSONValue} patch
   * @param {number | undefined} ifVersion
   */
  async #patch(id, patch, ifVersion) {
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
  delete(id, { ifVersion } = {}) {
    const ifs = ifVersion == null ? undefined : { [id]: ifVersion };
    return this.#queue(() => ({ kind: 'delete', collection: this.name, id, ifs }), id) ?? this.#delete(id, ifVersion, ifs);
  }

  /**
   * @param {string} id
   * @param {number | undefined} ifVersion
   * @param {Record<string, number> | undefined} ifs
   */
  async #delete(id, ifVersion, ifs) {
    checkId(id);
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
  commit(ops, { if: ifs } = {}) {
    if (!Array.isArray(ops) || ops.length === 0) return Promise.reject(new ViewsyncError('bad_request', 'commit: ops must be a non-empty array'));
    return this.#queue(() => ({ kind: 'commit', collection: this.name, ops, ifs: ifs && Object.keys(ifs).length ? { ...ifs } : undefined }), ...ops.map((op) => op?.id))
      ?? this.#commit(ops, ifs);
  }

  /**
   * @param {Op[]} ops
   * @param {Record<string, number> | undefined} ifs
   */
  async #commit(ops, ifs) {
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
  _apply(msg, fromCache = false) {
    if (this.#closed) return 'stale';
    const r = applyToState(this.#state, msg);
    if (r.status !== 'applied') return r.status;
    let ev = /** @type {import('../viewsync.js').Change<T> | null} */ (/** @type {unknown} */ (r.event));
    const p = this.#session._persist;
    if (p) {
      if (!fromCache) {
        p.saveSoon(this, ev && ev.type !== 'reset' ? ev.changed : ev ? null : []);
        if (this.#cached) {
          this.#cached = false;
          this.#session._syncChanged();
        }
        p.prune(this.#session._views.values());
      }
      // What the view shows: the change's ids (all of them after a
      // reset) with the queued writes over them. The change keeps its
      // added, updated and removed (the server's); changed also lists the
      // records whose shown value moved through the outbox.
      const d = this.#reshow(ev && ev.type !== 'reset' ? ev.changed : null);
      if (ev) ev = { ...ev, changed: [...new Set([...ev.changed, ...d.changed])] };
      else if (d.changed.length) ev = this.#pendingEvent(d);
    }
    this.#emit(ev);
    this.#readyResolve(this.#state.version);
    this.#wake();
    return 'applied';
  }

  /**
   * _fromCache shows the state the cache kept (a reset to it); the view
   * is cached until the server is heard.
   * @param {import('./persist.js').CachedView} c
   */
  _fromCache(c) {
    this.#cached = true; // already, for subscribers of the reset
    if (this._apply({ type: 'reset', epoch: c.epoch, version: c.version, records: c.records }, true) !== 'applied') this.#cached = false;
  }

  /** _live: the link follows the view from its cursor: it is no longer only the cache's. */
  _live() {
    if (!this.#cached) return;
    this.#cached = false;
    this.#session._syncChanged();
  }

  /** _serverState is the state as the server has it, without the queued writes. */
  _serverState() { return this.#state; }

  /** _pendingChanged shows the outbox as it now is, and tells subscribers what moved. */
  _pendingChanged() {
    if (this.#closed || !this.#session._persist) return;
    const d = this.#reshow([]);
    if (d.changed.length) this.#emit(this.#pendingEvent(d));
  }

  /**
   * @param {{added: string[], updated: string[], removed: string[], changed: string[]}} d
   * @returns {import('../viewsync.js').Change<T>}
   */
  #pendingEvent(d) {
    return { type: 'pending', epoch: /** @type {string} */ (this.#state.epoch), version: this.#state.version, ...d };
  }

  /** @param {import('../viewsync.js').Change<T> | null} ev */
  #emit(ev) {
    if (!ev) return;
    for (const fn of [...this.#subs]) {
      try { fn(ev); } catch (e) { queueMicrotask(() => { throw e; }); }
    }
  }

  /**
   * #reshow brings #shown up to date for ids (null: every id), the ids
   * queued writes touch, and those they touched before; it says which
   * shown records came, changed or went. A filtered view shows queued
   * writes only over the records it has (the server decides what
   * matches).
   * @param {Iterable<string> | null} ids
   */
  #reshow(ids) {
    const st = this.#state;
    const writes = /** @type {import('./persist.js').Persistence} */ (this.#session._persist).overlayFor(this);
    /** @type {Set<string>} */
    const pendingNow = new Set();
    for (const w of writes) for (const op of opsOf(w)) pendingNow.add(op.id);
    const all = new Set(ids === null ? [...st.records.keys(), ...this.#shown.keys()] : ids);
    for (const id of this.#pendingIds) all.add(id);
    for (const id of pendingNow) all.add(id);
    /** @type {string[]} */
    const added = [], updated = [], removed = [];
    const wasPending = this.#pendingIds;
    this.#pendingIds = new Set();
    for (const id of all) {
      const had = this.#shown.has(id);
      const old = this.#shown.get(id);
      const base = st.records.get(id);
      let { value, pending } = pendingNow.has(id) ? overlay(writes, this.name, id, base, mergePatch) : { value: base, pending: false };
      if (this.where && pending) {
        // The server decides what matches: a queued write shows in a
        // filtered view only over a record it has, and only when it keeps
        // every field the filter reads (else the record shows as the
        // server has it until the server says where it belongs).
        if (!st.records.has(id)) ({ value, pending } = { value: undefined, pending: false });
        else if (value !== undefined && this.#filterPaths().some((f) => !jsonEqual(getPath(value, f), getPath(/** @type {JSONValue} */ (base), f)))) value = base;
      }
      if (pending) this.#pendingIds.add(id);
      if (value === undefined) {
        if (had) {
          this.#shown.delete(id);
          removed.push(id);
        }
        continue;
      }
      this.#shown.set(id, value);
      if (!had) added.push(id);
      else if (old !== value || wasPending.has(id) !== pending || ids === null) updated.push(id);
    }
    return { added, updated, removed, changed: [...added, ...updated, ...removed] };
  }

  /** @type {string[] | null} */
  #paths = null;
  /** #filterPaths lists the fields the view's filter reads. */
  #filterPaths() {
    if (!this.#paths) this.#paths = filterPaths(this.where);
    return this.#paths;
  }

  #wake() {
    for (const w of [...this.#waiters]) {
      if (this.#done(w.version, w.epoch)) {
        this.#waiters.delete(w);
        w.resolve(this.#state.version);
      }
    }
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

/**
 * filterPaths lists the fields a filter reads (dotted paths), through
 * $and and $or; $id is the record's id, which no write changes.
 * @param {unknown} where
 * @returns {string[]}
 */
export function filterPaths(where) {
  /** @type {Set<string>} */
  const out = new Set();
  /** @param {unknown} w */
  const walk = (w) => {
    if (!w || typeof w !== 'object' || Array.isArray(w)) return;
    for (const [k, v] of Object.entries(w)) {
      if (k === '$and' || k === '$or') {
        if (Array.isArray(v)) v.forEach(walk);
      } else if (k !== '$id') out.add(k);
    }
  };
  walk(where);
  return [...out];
}
