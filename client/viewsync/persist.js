// Offline-first persistence (connect({persist})): each view's records and
// cursor kept in IndexedDB, and the outbox of writes made while offline,
// sent in order by one leader tab with an Idempotency-Key each.
import { ViewsyncError, errorFrom } from './errors.js';
import { backoff, encodeId, isDotId, noop } from './util.js';

/**
 * @typedef {import('../viewsync.js').JSONValue} JSONValue
 * @typedef {import('../viewsync.js').Op} Op
 * @typedef {import('../viewsync.js').RecordOf<JSONValue>} Rec
 */

/**
 * A view as the cache keeps it.
 * @typedef {object} CachedView
 * @property {string} key scope + "\n" + the view's key (name, or name?where=…)
 * @property {string} scope
 * @property {string} epoch
 * @property {number} version
 * @property {Rec[]} records
 */

/**
 * What changed in a view's cache since it was last saved: its cursor
 * (meta), and either every record (replace) or the records written (put)
 * and gone (del).
 * @typedef {object} ViewChanges
 * @property {Omit<CachedView, 'records'>} meta
 * @property {boolean} replace put holds every record; the others go
 * @property {Rec[]} put
 * @property {string[]} del
 */

/**
 * A queued write, as the outbox keeps it. kind put, patch and delete
 * write one record (id); commit writes ops; call runs name with arg. ifs
 * are the preconditions (id → version, 0: must not exist); bases names,
 * for an id of ifs, the earlier queued write (its key) the precondition
 * was taken on top of: when that one lands at V, the precondition becomes V.
 * @typedef {object} Write
 * @property {number} [seq] its place in the outbox (given by the store)
 * @property {string} scope
 * @property {string} key the Idempotency-Key
 * @property {'put' | 'patch' | 'delete' | 'commit' | 'call'} kind
 * @property {string} collection '' for a call
 * @property {string} [id]
 * @property {JSONValue} [value] put: the value; patch: the merge patch
 * @property {Op[]} [ops]
 * @property {Record<string, number>} [ifs]
 * @property {Record<string, string>} [bases]
 * @property {string} [name]
 * @property {JSONValue} [arg]
 * @property {number} queuedAt ms since the epoch
 * @property {string} [tab] the session (tab) that queued it
 */

/**
 * How a write ended: ok with the version (a call: its answer), or the error.
 * @typedef {{key: string, ok: true, version: number, answer?: any} | {key: string, ok: false, error: {code: string, message: string, status: number}}} Settled
 */

/**
 * Where the cache and the outbox live: IndexedDB in a browser
 * (IDBStore), memory in tests (MemoryStore).
 * @typedef {object} Store
 * @property {(key: string) => Promise<CachedView | undefined>} getView
 * @property {(c: ViewChanges) => Promise<void>} putView saves a view's cursor and what changed in its records, at once
 * @property {(scope: string) => Promise<void>} deleteViews
 * @property {(scope: string) => Promise<string | undefined>} getTag
 * @property {(scope: string, tag: string) => Promise<void>} putTag
 * @property {(w: Write) => Promise<number>} addWrite resolves its seq
 * @property {(w: Write) => Promise<void>} updateWrite
 * @property {(scope: string) => Promise<Write[]>} listWrites in seq order
 * @property {(seq: number) => Promise<void>} deleteWrite
 */

/** MemoryStore keeps the cache and the outbox in memory (tests; runtimes without IndexedDB). */
export class MemoryStore {
  /** @type {Map<string, CachedView>} */
  views = new Map();
  /** @type {Map<string, string>} */
  tags = new Map();
  /** @type {Map<number, Write>} */
  writes = new Map();
  #seq = 0;

  /** records written by putView (the test of saves that write what changed) */
  recordWrites = 0;

  /** @param {string} key */
  async getView(key) { return clone(this.views.get(key)); }
  /** @param {ViewChanges} c */
  async putView(c) {
    const recs = new Map(c.replace ? [] : (this.views.get(c.meta.key)?.records ?? []).map((r) => [r.id, r]));
    for (const id of c.del) recs.delete(id);
    for (const r of c.put) recs.set(r.id, r);
    this.recordWrites += c.put.length + c.del.length;
    this.views.set(c.meta.key, clone({ ...c.meta, records: [...recs.values()] }));
  }
  /** @param {string} scope */
  async deleteViews(scope) { for (const [k, v] of this.views) if (v.scope === scope) this.views.delete(k); }
  /** @param {string} scope */
  async getTag(scope) { return this.tags.get(scope); }
  /** @param {string} scope @param {string} tag */
  async putTag(scope, tag) { this.tags.set(scope, tag); }
  /** @param {Write} w */
  async addWrite(w) {
    const seq = ++this.#seq;
    this.writes.set(seq, clone({ ...w, seq }));
    return seq;
  }
  /** @param {Write} w */
  async updateWrite(w) { if (w.seq !== undefined && this.writes.has(w.seq)) this.writes.set(w.seq, clone(w)); }
  /** @param {string} scope */
  async listWrites(scope) {
    return [...this.writes.values()].filter((w) => w.scope === scope).sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0)).map(clone);
  }
  /** @param {number} seq */
  async deleteWrite(seq) { this.writes.delete(seq); }
}

/**
 * @template T
 * @param {T} x
 * @returns {T}
 */
function clone(x) { return x === undefined ? x : structuredClone(x); }

/** IDBStore keeps the cache and the outbox in the page origin's IndexedDB. */
export class IDBStore {
  /** @type {Promise<IDBDatabase>} */
  #db;

  /** @param {string} [name] the database's name */
  constructor(name = 'viewsync') {
    this.#db = new Promise((resolve, reject) => {
      // Version 2 keeps a view's records one object each (recs), so that
      // a save writes what changed; version 1 kept them in the view's
      // object, which a save rewrote whole. The cache of version 1 is
      // dropped (views come back from the server); the outbox is kept.
      const req = globalThis.indexedDB.open(name, 2);
      req.onupgradeneeded = (e) => {
        const db = req.result;
        if (e.oldVersion < 1) {
          db.createObjectStore('outbox', { keyPath: 'seq', autoIncrement: true }).createIndex('scope', 'scope');
          db.createObjectStore('meta', { keyPath: 'scope' });
        }
        if (db.objectStoreNames.contains('views')) db.deleteObjectStore('views');
        db.createObjectStore('views', { keyPath: 'key' }).createIndex('scope', 'scope');
        db.createObjectStore('recs', { keyPath: ['view', 'id'] }).createIndex('scope', 'scope');
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
      req.onblocked = () => reject(new ViewsyncError('unavailable', 'IndexedDB: blocked by another version open elsewhere', 0));
    });
    this.#db.catch(noop);
  }

  /**
   * #tx runs fn in a transaction of store and resolves what fn's last request gave, once committed.
   * @template R
   * @param {string} store
   * @param {IDBTransactionMode} mode
   * @param {(s: IDBObjectStore) => IDBRequest<R> | void} fn
   * @returns {Promise<R | undefined>}
   */
  async #tx(store, mode, fn) {
    const db = await this.#db;
    return new Promise((resolve, reject) => {
      const tx = db.transaction(store, mode);
      const req = fn(tx.objectStore(store));
      tx.oncomplete = () => resolve(req ? req.result : undefined);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  /**
   * #txs runs fn in a transaction over stores, resolving once committed.
   * @param {string[]} stores
   * @param {IDBTransactionMode} mode
   * @param {(tx: IDBTransaction) => void} fn
   * @returns {Promise<void>}
   */
  async #txs(stores, mode, fn) {
    const db = await this.#db;
    return new Promise((resolve, reject) => {
      const tx = db.transaction(stores, mode);
      fn(tx);
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  /**
   * recsOf is the key range of view key's records.
   * @param {string} key
   */
  static recsOf(key) { return IDBKeyRange.bound([key], [key, []]); }

  /** @param {string} key */
  async getView(key) {
    /** @type {any} */
    let meta;
    /** @type {Array<Rec & {view?: string, scope?: string}>} */
    let recs = [];
    await this.#txs(['views', 'recs'], 'readonly', (tx) => {
      const m = tx.objectStore('views').get(key);
      m.onsuccess = () => { meta = m.result; };
      const r = tx.objectStore('recs').getAll(IDBStore.recsOf(key));
      r.onsuccess = () => { recs = r.result; };
    });
    if (!meta) return undefined;
    return /** @type {CachedView} */ ({ ...meta, records: recs.map(({ id, value, version }) => ({ id, value, version })) });
  }
  /** @param {ViewChanges} c */
  async putView(c) {
    const { key, scope } = c.meta;
    await this.#txs(['views', 'recs'], 'readwrite', (tx) => {
      tx.objectStore('views').put(c.meta);
      const recs = tx.objectStore('recs');
      if (c.replace) recs.delete(IDBStore.recsOf(key));
      for (const id of c.del) recs.delete([key, id]);
      for (const r of c.put) recs.put({ view: key, scope, id: r.id, value: r.value, version: r.version });
    });
  }
  /** @param {string} scope */
  async deleteViews(scope) {
    await this.#txs(['views', 'recs'], 'readwrite', (tx) => {
      for (const name of ['views', 'recs']) {
        const s = tx.objectStore(name);
        const req = s.index('scope').openKeyCursor(IDBKeyRange.only(scope));
        req.onsuccess = () => {
          const c = req.result;
          if (!c) return;
          s.delete(c.primaryKey);
          c.continue();
        };
      }
    });
  }
  /** @param {string} scope */
  async getTag(scope) {
    const m = /** @type {{tag: string} | undefined} */ (await this.#tx('meta', 'readonly', (s) => s.get(scope)));
    return m?.tag;
  }
  /** @param {string} scope @param {string} tag */
  async putTag(scope, tag) { await this.#tx('meta', 'readwrite', (s) => { s.put({ scope, tag }); }); }
  /** @param {Write} w */
  async addWrite(w) {
    const { seq: _, ...rest } = w;
    return /** @type {number} */ (await this.#tx('outbox', 'readwrite', (s) => s.add(rest)));
  }
  /** @param {Write} w */
  async updateWrite(w) {
    await this.#tx('outbox', 'readwrite', (s) => {
      const req = s.get(/** @type {number} */ (w.seq));
      req.onsuccess = () => { if (req.result) s.put(w); }; // only if still queued
    });
  }
  /** @param {string} scope */
  async listWrites(scope) {
    const all = /** @type {Write[]} */ (await this.#tx('outbox', 'readonly', (s) => s.index('scope').getAll(IDBKeyRange.only(scope))));
    return (all || []).sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
  }
  /** @param {number} seq */
  async deleteWrite(seq) { await this.#tx('outbox', 'readwrite', (s) => { s.delete(seq); }); }
}

/**
 * hex is the lowercase hex of bytes.
 * @param {ArrayBuffer} buf
 */
function hex(buf) {
  return [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * principalOf names who a token speaks for, without the token: the
 * SHA-256 of its subject when it is a JWT with one (so that a refreshed
 * token keeps the cache), else of the token itself; "anonymous" without
 * a token.
 * @param {string} token
 * @returns {Promise<string>}
 */
export async function principalOf(token) {
  if (!token) return 'anonymous';
  let basis = `token:${token}`;
  const parts = token.split('.');
  if (parts.length === 3) {
    try {
      const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
      const claims = JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)));
      if (claims && typeof claims.sub === 'string' && claims.sub) basis = `sub:${claims.sub}`;
    } catch { /* not a JWT: the token's hash */ }
  }
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new ViewsyncError('unavailable', 'persist: no crypto.subtle to derive the cache key (needs a secure context: https or localhost)', 0);
  const digest = await subtle.digest('SHA-256', new TextEncoder().encode(basis));
  return hex(digest).slice(0, 32);
}

/**
 * scopeOf is the cache's key of a server and a principal.
 * @param {string} base the server's base URL
 * @param {string} principal
 */
export function scopeOf(base, principal) { return `${base}\n${principal}`; }

/**
 * newKey returns a fresh Idempotency-Key.
 * @returns {string}
 */
export function newKey() {
  const c = globalThis.crypto;
  if (c?.randomUUID) return c.randomUUID();
  const b = new Uint8Array(16);
  c.getRandomValues(b);
  return hex(b.buffer);
}

/**
 * transient tells whether a failed send may succeed later unchanged (no
 * answer, a server error, rate limited, an expired token, or the same key
 * still being applied from an earlier send whose answer was lost): the
 * write stays queued and goes again with its key.
 * @param {unknown} e
 */
export function transient(e) {
  if (!(e instanceof ViewsyncError)) return true;
  if (e.code === 'idempotency_in_flight') return true;
  return e.status === 0 || e.status >= 500 || e.status === 429 || e.status === 401 || e.status === 408;
}

/**
 * overlay applies the pending writes of collection to the value of record
 * id as the server has it (undefined: no record): the value the user
 * should see, and whether a pending write touches it.
 * @param {Write[]} writes in order
 * @param {string} collection
 * @param {string} id
 * @param {JSONValue | undefined} value
 * @param {(target: JSONValue | undefined, patch: JSONValue) => JSONValue} merge
 * @returns {{value: JSONValue | undefined, pending: boolean}}
 */
export function overlay(writes, collection, id, value, merge) {
  let v = value, pending = false;
  for (const w of writes) {
    if (w.collection !== collection) continue;
    for (const op of opsOf(w)) {
      if (op.id !== id) continue;
      pending = true;
      if (op.op === 'delete') v = undefined;
      else if (op.op === 'patch') v = merge(v, /** @type {JSONValue} */ (op.value));
      else v = op.value;
    }
  }
  return { value: v, pending };
}

/**
 * opsOf is what a write does to records, as ops (patch: a merge patch as op "patch").
 * @param {Write} w
 * @returns {Array<{op: string, id: string, value?: JSONValue}>}
 */
export function opsOf(w) {
  switch (w.kind) {
    case 'put': return [{ op: 'put', id: /** @type {string} */ (w.id), value: w.value }];
    case 'patch': return [{ op: 'patch', id: /** @type {string} */ (w.id), value: w.value }];
    case 'delete': return [{ op: 'delete', id: /** @type {string} */ (w.id) }];
    case 'commit': return /** @type {any[]} */ (w.ops || []);
    default: return [];
  }
}

/**
 * rebase updates, after write done landed at version, the preconditions
 * of the later writes taken on top of it; returns the writes it changed.
 * @param {Write[]} later
 * @param {Write} done
 * @param {number} version
 * @returns {Write[]}
 */
export function rebase(later, done, version) {
  /** @type {Write[]} */
  const changed = [];
  for (const w of later) {
    if (!w.bases) continue;
    let moved = false;
    for (const [id, key] of Object.entries(w.bases)) {
      if (key !== done.key) continue;
      if (w.ifs) w.ifs[id] = version;
      delete w.bases[id];
      moved = true;
    }
    if (moved) changed.push(w);
  }
  return changed;
}

/**
 * basesFor names, for each id of ifs, the last write of pending to the same
 * record of collection: the precondition was taken on the value it shows.
 * @param {Write[]} pending
 * @param {string} collection
 * @param {Record<string, number> | undefined} ifs
 * @returns {Record<string, string> | undefined}
 */
export function basesFor(pending, collection, ifs) {
  if (!ifs) return undefined;
  /** @type {Record<string, string>} */
  const bases = {};
  for (const id of Object.keys(ifs)) {
    for (const w of pending) {
      if (w.collection === collection && opsOf(w).some((op) => op.id === id)) bases[id] = w.key;
    }
  }
  return Object.keys(bases).length ? bases : undefined;
}

/**
 * preconditionHeaders maps a single-record write's precondition to headers.
 * @param {number | undefined} ifVersion
 * @returns {Record<string, string>}
 */
function preconditionHeaders(ifVersion) {
  if (ifVersion == null) return {};
  if (ifVersion === 0) return { 'If-None-Match': '*' };
  return { 'If-Match': `"${ifVersion}"` };
}

/**
 * sendWrite sends one queued write over HTTP with its Idempotency-Key and
 * resolves {version, answer}; it rejects with the ViewsyncError of a refusal.
 * @param {import('./session.js').Session} s
 * @param {Write} w
 * @returns {Promise<{version: number, answer?: any}>}
 */
export async function sendWrite(s, w) {
  const headers = { 'Idempotency-Key': w.key };
  const coll = `/v1/collections/${w.collection}`;
  const id = /** @type {string} */ (w.id);
  const ifv = w.ifs && id !== undefined ? w.ifs[id] : undefined;
  /** @type {{method: string, path: string, body?: unknown, contentType?: string, headers: Record<string, string>}} */
  let req;
  if (w.kind === 'call') {
    req = { method: 'POST', path: `/v1/calls/${encodeId(/** @type {string} */ (w.name))}`, body: { arg: w.arg ?? null }, headers };
  } else if (w.kind === 'commit' || ((w.kind === 'put' || w.kind === 'delete') && isDotId(id))) {
    /** @type {{ops: any[], if?: Record<string, number>}} */
    const body = { ops: w.kind === 'commit' ? /** @type {Op[]} */ (w.ops) : opsOf(w) };
    if (w.ifs && Object.keys(w.ifs).length) body.if = w.ifs;
    req = { method: 'POST', path: `${coll}/commits`, body, headers };
  } else if (w.kind === 'put') {
    req = { method: 'PUT', path: `${coll}/records/${encodeId(id)}`, body: w.value, headers: { ...headers, ...preconditionHeaders(ifv) } };
  } else if (w.kind === 'patch') {
    req = { method: 'PATCH', path: `${coll}/records/${encodeId(id)}`, body: w.value, contentType: 'application/merge-patch+json', headers: { ...headers, ...preconditionHeaders(ifv) } };
  } else {
    req = { method: 'DELETE', path: `${coll}/records/${encodeId(id)}`, headers: { ...headers, ...preconditionHeaders(ifv) } };
  }
  const res = await s._fetch(req.method, req.path, { body: req.body, contentType: req.contentType, headers: req.headers });
  if (!res.ok) throw await errorFrom(res, `${req.method} ${req.path}`);
  let answer;
  try {
    answer = await res.json();
  } catch {
    throw new ViewsyncError('bad_response', `${req.method} ${req.path}: answer is not JSON`, res.status);
  }
  if (w.kind === 'call') return { version: 0, answer };
  return { version: answer.version };
}

/**
 * A queued write as the API shows it (QueuedWrite in viewsync.d.ts).
 * @param {Write} w
 * @returns {import('../viewsync.js').QueuedWrite}
 */
export function publicWrite(w) {
  const { seq: _s, scope: _c, bases: _b, tab: _t, ...rest } = w;
  return /** @type {any} */ (rest);
}

/**
 * Persistence is a session's cache and outbox (connect({persist})). One
 * per session; the tabs of an origin share the store, and the one holding
 * the Web Lock of the scope sends the outbox (the others are told of what
 * changes over a BroadcastChannel).
 */
export class Persistence {
  /** @type {import('./session.js').Session} */
  #s;
  /** @type {Store} */
  #store;
  #tag;
  #scope = '';
  /** @type {Promise<void>} resolves once the scope is known and the outbox read */
  ready;
  /** @type {Write[]} the writes queued and not yet settled, in order (every tab's) */
  writes = [];
  /** @type {Array<{w: Write, version: number}>} writes that landed, shown until the views include their version */
  landing = [];
  /** @type {Map<string, {resolve: (r: any) => void, reject: (e: unknown) => void}>} this tab's waits, by key */
  #waits = new Map();
  /** @type {BroadcastChannel | null} */
  #bc = null;
  #leader = false;
  /** @type {() => void} */
  #release = noop;
  #flushing = false;
  #again = false; // a flush was asked for while one ran
  #attempt = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #retry;
  /** @type {Map<any, ReturnType<typeof setTimeout>>} pending saves of views */
  #saves = new Map();
  /** @type {Map<any, Set<string> | null>} the ids of each view changed since its last save (null: all of them) */
  #dirty = new Map();
  #closed = false;
  #locks;
  #onHide = () => this.#saveAll();
  // This session's id among the tabs; each holds a Web Lock named after
  // it while open, so that a write's tab can be known to be gone.
  #tab = newKey();
  /** @type {Map<string, string | undefined>} the tab of each write refused lately, by key */
  #refusedBy = new Map();

  /**
   * @param {import('./session.js').Session} session
   * @param {import('../viewsync.js').PersistOptions} opts
   */
  constructor(session, opts) {
    this.#s = session;
    // Undocumented, for tests: store (a MemoryStore in place of
    // IndexedDB) and locks (the Web Locks that elect the tab that sends;
    // null: this session sends).
    const o = /** @type {{store?: Store, locks?: any}} */ (opts);
    this.#store = o.store ?? (globalThis.indexedDB ? new IDBStore(opts.database) : new MemoryStore());
    this.#tag = String(opts.version ?? '');
    this.#locks = o.locks === undefined ? globalThis.navigator?.locks : o.locks;
    this.ready = this.#open(opts);
    this.ready.catch((e) => session._emit('error', e instanceof ViewsyncError ? e : new ViewsyncError('unavailable', `persist: ${e?.message || e}`, 0)));
  }

  get scope() { return this.#scope; }
  /** leader tells whether this tab sends the outbox. */
  get leader() { return this.#leader; }

  /** @param {import('../viewsync.js').PersistOptions} opts */
  async #open(opts) {
    const principal = opts.principal ?? await principalOf(await this.#s._token());
    this.#scope = scopeOf(this.#s._base, principal);
    if ((await this.#store.getTag(this.#scope)) !== this.#tag) {
      await this.#store.deleteViews(this.#scope);
      await this.#store.putTag(this.#scope, this.#tag);
    }
    this.writes = await this.#store.listWrites(this.#scope);
    if (this.#closed) return;
    if (typeof globalThis.BroadcastChannel === 'function') {
      this.#bc = new BroadcastChannel(`viewsync\n${this.#scope}`);
      this.#bc.onmessage = (e) => this.#onMessage(e.data);
    }
    globalThis.addEventListener?.('pagehide', this.#onHide);
    this.#s._pendingChanged();
    if (this.#locks?.request) {
      this.#locks.request(`viewsync-tab\n${this.#tab}`, () => new Promise((release) => {
        const prev = this.#release;
        this.#release = () => { prev(); release(undefined); };
        if (this.#closed) this.#release();
      })).catch(noop);
      this.#locks.request(`viewsync-outbox\n${this.#scope}`, () => new Promise((release) => {
        if (this.#closed) return release(undefined);
        const prev = this.#release;
        this.#release = () => { prev(); release(undefined); };
        this.#leader = true;
        this.flush();
      })).catch(noop);
    } else {
      this.#leader = true;
      this.flush();
    }
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#saveAll();
    clearTimeout(this.#retry);
    this.#leader = false;
    this.#release();
    this.#bc?.close();
    globalThis.removeEventListener?.('pagehide', this.#onHide);
    const err = new ViewsyncError('closed', 'session closed; the write stays queued and is sent by the next session', 0);
    for (const w of this.#waits.values()) w.reject(err);
    this.#waits.clear();
  }

  /**
   * viewKey is the cache's key of view v.
   * @param {import('./view.js').View<any>} v
   */
  #viewKey(v) { return `${this.#scope}\n${v._key}`; }

  /**
   * load resolves the cached state of v, if any.
   * @param {import('./view.js').View<any>} v
   * @returns {Promise<CachedView | undefined>}
   */
  async load(v) {
    await this.ready;
    return this.#store.getView(this.#viewKey(v));
  }

  /**
   * saveSoon saves v's state a moment after its last change: its cursor
   * and the records of ids (null: every record, as after a reset).
   * @param {import('./view.js').View<any>} v
   * @param {Iterable<string> | null} ids
   */
  saveSoon(v, ids) {
    if (this.#closed) return;
    const d = this.#dirty.get(v);
    if (ids === null || d === null) this.#dirty.set(v, null);
    else if (!d) this.#dirty.set(v, new Set(ids));
    else for (const id of ids) d.add(id);
    if (!this.#saves.has(v)) this.#saves.set(v, setTimeout(() => this.#save(v), 100));
  }

  /** @param {import('./view.js').View<any>} v */
  #save(v) {
    clearTimeout(this.#saves.get(v));
    this.#saves.delete(v);
    const ids = this.#dirty.get(v);
    this.#dirty.delete(v);
    const st = v._serverState();
    if (!this.#scope || st.epoch === null || v._temp) return;
    /** @type {Rec[]} */
    const put = [];
    /** @type {string[]} */
    const del = [];
    for (const id of ids ?? st.records.keys()) {
      if (st.records.has(id)) put.push({ id, value: /** @type {JSONValue} */ (st.records.get(id)), version: st.versions.get(id) ?? 0 });
      else del.push(id);
    }
    const meta = { key: this.#viewKey(v), scope: this.#scope, epoch: st.epoch, version: st.version };
    this.#store.putView({ meta, replace: ids === null, put, del })
      .catch((e) => this.#s._emit('error', new ViewsyncError('unavailable', `persist: saving ${v.name}: ${e?.message || e}`, 0)));
  }

  #saveAll() { for (const v of [...this.#saves.keys()]) this.#save(v); }

  /**
   * overlayFor is what view v shows over the server's state: the queued
   * writes, then those that landed past its version.
   * @param {import('./view.js').View<any>} v
   * @returns {Write[]}
   */
  overlayFor(v) {
    const landed = this.landing.filter((l) => l.w.collection === v.name && l.version > v.version).map((l) => l.w);
    return [...landed, ...this.writes.filter((w) => w.collection === v.name)];
  }

  /**
   * enqueue puts a write in the outbox and resolves how it ends (the
   * version, or a call's answer); the promise has `key` and `queued`
   * (resolves once the write is stored).
   * @param {Omit<Write, 'scope' | 'key' | 'queuedAt'>} write
   * @returns {Promise<any> & {key: string, queued: Promise<void>}}
   */
  enqueue(write) {
    const key = newKey();
    /** @type {Promise<any>} */
    const done = new Promise((resolve, reject) => this.#waits.set(key, { resolve, reject }));
    // A write nobody awaits is no unhandled rejection: its refusal is an
    // 'outbox' event, and a closed session leaves it queued.
    done.catch(noop);
    const queued = (async () => {
      await this.ready;
      if (this.#closed) throw new ViewsyncError('closed', 'session closed', 0);
      /** @type {Write} */
      const w = { ...write, scope: this.#scope, key, queuedAt: Date.now(), tab: this.#tab };
      const bases = basesFor(this.writes, w.collection, w.ifs);
      if (bases) w.bases = bases;
      else delete w.bases;
      // A precondition taken on what a write that landed shows (the view
      // has not caught up with it yet) is on the version it got.
      for (const id of Object.keys(w.ifs || {})) {
        if (bases?.[id] || !w.ifs) continue;
        const last = this.landing.findLast((l) => l.w.collection === w.collection && opsOf(l.w).some((op) => op.id === id));
        if (last && w.ifs[id] < last.version) w.ifs[id] = last.version;
      }
      w.seq = await this.#store.addWrite(w);
      this.writes.push(w);
      this.#bc?.postMessage({ type: 'queued' });
      this.#s._emit('outbox', { type: 'queued', write: publicWrite(w) });
      this.#s._pendingChanged();
      this.flush();
    })();
    queued.catch((e) => {
      const wait = this.#waits.get(key);
      this.#waits.delete(key);
      wait?.reject(e);
    });
    return Object.assign(done, { key, queued });
  }

  /** @param {any} m */
  #onMessage(m) {
    if (this.#closed || !m) return;
    if (m.type === 'settled') this.#settled(m.settled, m.write);
    this.#refresh().then(() => { if (m.type === 'queued') this.flush(); });
  }

  async #refresh() {
    try {
      this.writes = await this.#store.listWrites(this.#scope);
    } catch { return; }
    if (!this.#closed) this.#s._pendingChanged();
  }

  /**
   * flush sends the outbox in order, one write at a time, when this tab is
   * the leader; a write that gets no answer (or a transient refusal) stays
   * first and goes again, with its key, after a backoff or when the
   * session goes live.
   */
  flush() {
    this.#flush().catch((e) => {
      this.#flushing = false;
      this.#s._emit('error', new ViewsyncError('unavailable', `persist: sending the outbox: ${e?.message || e}`, 0));
      if (!this.#closed) this.#retry = setTimeout(() => this.flush(), backoff(this.#attempt++, this.#s._opts.backoffBase, this.#s._opts.backoffCap));
    });
  }

  async #flush() {
    if (!this.#leader || this.#closed) return;
    if (this.#flushing) {
      this.#again = true;
      return;
    }
    this.#flushing = true;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    try {
      for (;;) {
        this.#again = false;
        const list = await this.#store.listWrites(this.#scope);
        if (this.#closed || !this.#leader) return;
        if (list.length === 0) {
          if (this.writes.length) {
            this.writes = [];
            this.#s._pendingChanged();
          }
          if (this.#again) continue;
          return;
        }
        const w = list[0];
        /** @type {Settled} */
        let settled;
        try {
          const r = await sendWrite(this.#s, w);
          settled = { key: w.key, ok: true, version: r.version, answer: r.answer };
        } catch (e) {
          if (this.#closed) return;
          if (transient(e)) {
            this.#retry = setTimeout(() => this.flush(), backoff(this.#attempt++, this.#s._opts.backoffBase, this.#s._opts.backoffCap));
            this.#again = false;
            return;
          }
          const err = /** @type {ViewsyncError} */ (e);
          settled = { key: w.key, ok: false, error: { code: err.code, message: err.message, status: err.status } };
        }
        this.#attempt = 0;
        if (settled.ok) {
          for (const d of rebase(list.slice(1), w, settled.version)) await this.#store.updateWrite(d);
        }
        await this.#store.deleteWrite(/** @type {number} */ (w.seq));
        this.writes = list.slice(1);
        this.#bc?.postMessage({ type: 'settled', settled, write: w });
        this.#settled(settled, w);
        this.#s._pendingChanged();
      }
    } finally {
      this.#flushing = false;
    }
  }

  /** kick sends the outbox now (the session went live). */
  kick() {
    if (this.#retry !== undefined || this.writes.length) {
      this.#attempt = 0;
      this.flush();
    }
  }

  /**
   * #settled ends a write in this tab: its wait, the overlay while the
   * views catch up, and the 'outbox' event.
   * @param {Settled} settled
   * @param {Write} w
   */
  #settled(settled, w) {
    this.writes = this.writes.filter((x) => x.key !== w.key);
    const wait = this.#waits.get(settled.key);
    this.#waits.delete(settled.key);
    // The views show the outbox as it now is before listeners hear of
    // the write: a refused write's record is the server's again.
    if (settled.ok) {
      if (w.kind !== 'call') this.landing.push({ w, version: settled.version });
      this.#s._pendingChanged();
      wait?.resolve(w.kind === 'call' ? settled.answer : settled.version);
      this.#s._emit('outbox', { type: 'sent', write: publicWrite(w), version: settled.version });
    } else {
      const err = new ViewsyncError(settled.error.code, settled.error.message, settled.error.status);
      this.#refusedBy.set(w.key, w.tab);
      if (this.#refusedBy.size > 100) this.#refusedBy.delete(this.#refusedBy.keys().next().value ?? '');
      this.#s._pendingChanged();
      wait?.reject(err);
      this.#s._emit('outbox', { type: 'failed', write: publicWrite(w), error: err });
    }
  }

  /**
   * mine tells whether a refused write (by key) is this tab's to show: it
   * queued it, or the tab that did is gone (reloaded, closed).
   * @param {string} key
   * @returns {Promise<boolean>}
   */
  async mine(key) {
    const tab = this.#refusedBy.get(key);
    if (tab === this.#tab) return true;
    if (!tab || !this.#locks?.query) return !tab || !this.#locks;
    try {
      const { held = [] } = await this.#locks.query();
      return !held.some((/** @type {{name?: string}} */ l) => l.name === `viewsync-tab\n${tab}`);
    } catch {
      return true;
    }
  }

  /**
   * prune drops the landed writes every open view of their collection
   * includes.
   * @param {Iterable<import('./view.js').View<any>>} views
   */
  prune(views) {
    const vs = [...views];
    this.landing = this.landing.filter((l) => vs.some((v) => v.name === l.w.collection && v.version < l.version));
  }
}
