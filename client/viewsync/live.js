// The state of a view, and of a session's connection, as immutable
// snapshots that change identity only when what they show changes: what the
// framework bindings (react.js, vue.js, svelte.js beside viewsync.js)
// render. Each follows the Svelte store contract (subscribe calls its
// function at once with the current snapshot, then with each new one) and
// offers what React's useSyncExternalStore wants (listen, get).
import { noop } from './util.js';

/**
 * @typedef {import('../viewsync.js').JSONValue} JSONValue
 * @typedef {import('../viewsync.js').ViewsyncError} ViewsyncError
 * @typedef {import('../viewsync.js').Status} Status
 * @typedef {import('../viewsync.js').Session} Session
 */

/** @type {WeakMap<object, LiveView<any>>} */
const views = new WeakMap();
/** @type {WeakMap<object, LiveStatus>} */
const sessions = new WeakMap();

/**
 * liveView returns the live state of view: the same object for the same
 * view, so that every component showing it shares one snapshot.
 * @template T
 * @param {import('../viewsync.js').View<T>} view
 * @returns {LiveView<T>}
 */
export function liveView(view) {
  let s = views.get(view);
  if (!s) {
    if (!view || typeof view.subscribe !== 'function' || typeof view.waitFor !== 'function') {
      throw new TypeError('viewsync: want a View (session.collection(name))');
    }
    s = new LiveView(view);
    views.set(view, s);
  }
  return s;
}

/**
 * liveStatus returns the live status of session's connection, the same
 * object for the same session.
 * @param {Session} session
 * @returns {LiveStatus}
 */
export function liveStatus(session) {
  let s = sessions.get(session);
  if (!s) {
    if (!session || typeof session.on !== 'function') throw new TypeError('viewsync: want a Session (connect())');
    s = new LiveStatus(session);
    sessions.set(session, s);
  }
  return s;
}

/**
 * Listeners is a set of functions called with each new value, started
 * when the first one comes and stopped when the last one goes.
 * @template V
 */
class Listeners {
  /** @type {Set<{fn: (value: V) => void}>} one entry per listen, so that a function may listen twice */
  #set = new Set();
  #stop = noop;
  #start;

  /** @param {() => () => void} start begins following the source; returns how to stop */
  constructor(start) {
    this.#start = start;
  }

  /**
   * @param {(value: V) => void} fn
   * @returns {() => void}
   */
  add(fn) {
    if (typeof fn !== 'function') throw new TypeError('viewsync: subscribe wants a function');
    const entry = { fn };
    this.#set.add(entry);
    if (this.#set.size === 1) this.#stop = this.#start();
    return () => {
      if (!this.#set.delete(entry) || this.#set.size > 0) return;
      const stop = this.#stop;
      this.#stop = noop;
      stop();
    };
  }

  get active() { return this.#set.size > 0; }

  /** @param {V} value */
  call(value) {
    for (const e of [...this.#set]) {
      if (!this.#set.has(e)) continue;
      try { e.fn(value); } catch (err) { queueMicrotask(() => { throw err; }); }
    }
  }
}

/**
 * LiveView holds a view's snapshot ({records, version, synced, status,
 * error}, frozen). records is an array of the view's records ({id, value,
 * version}, frozen) sorted by id (code unit order, as bindTable's rows);
 * a record's object stays the same while the record does not change, so
 * that a component keyed or memoized on it is not redrawn.
 * @template T
 */
export class LiveView {
  /** @type {import('../viewsync.js').View<T>} */
  #view;
  /** @type {Session} */
  #session;
  /** @type {import('../viewsync.js').ViewState<T>} */
  #snap;
  /** @type {Map<string, import('../viewsync.js').RecordOf<T>>} record objects by id, reused while unchanged */
  #recs = new Map();
  /** @type {string[]} the ids of #recs, sorted */
  #ids = [];
  /** @type {readonly import('../viewsync.js').RecordOf<T>[]} */
  #records = Object.freeze([]);
  /** @type {{version: number, epoch: string | null} | null} the view's version and epoch #recs holds; null: not read yet */
  #at = null;
  /** @type {import('../viewsync.js').ConnectionState} */
  #state;
  /** @type {ViewsyncError | null} why the view's ready rejected */
  #viewError = null;
  /** @type {ViewsyncError | null} the last error the session reported since it was live or the view changed */
  #sessionError = null;
  /** @type {Listeners<import('../viewsync.js').ViewState<T>>} */
  #listeners;

  /** @param {import('../viewsync.js').View<T>} view */
  constructor(view) {
    this.#view = view;
    this.#session = view.session;
    this.#state = this.#session.status.state;
    this.#listeners = new Listeners(() => this.#follow());
    this.#readRecords();
    this.#snap = this.#make();
    view.ready.then(noop, (e) => {
      this.#viewError = e;
      this.#update();
    });
  }

  /**
   * get returns the current snapshot: the same object until the view, the
   * session's state or the error changes.
   * @returns {import('../viewsync.js').ViewState<T>}
   */
  get = () => {
    if (!this.#listeners.active) {
      // Nothing followed the view meanwhile: see whether it moved.
      this.#state = this.#session.status.state;
      this.#readRecords();
      this.#refresh();
    }
    return this.#snap;
  };

  /**
   * listen calls fn with each new snapshot (not with the current one);
   * returns the function that stops it.
   * @param {(snapshot: import('../viewsync.js').ViewState<T>) => void} fn
   * @returns {() => void}
   */
  listen = (fn) => {
    const active = this.#listeners.active;
    if (!active) this.get();
    return this.#listeners.add(fn);
  };

  /**
   * subscribe follows the Svelte store contract: fn is called at once with
   * the current snapshot, then with each new one; returns the function
   * that stops it.
   * @param {(snapshot: import('../viewsync.js').ViewState<T>) => void} fn
   * @returns {() => void}
   */
  subscribe = (fn) => {
    const stop = this.listen(fn);
    fn(this.#snap);
    return stop;
  };

  /**
   * #follow listens to the view (its changes, and its version moving
   * without one), its session's status and errors; returns how to stop.
   */
  #follow() {
    const v = this.#view;
    const offChange = v.subscribe((change) => {
      this.#sessionError = null;
      if (change.type === 'reset') this.#readRecords(true);
      else this.#applyChange(change);
      this.#update();
    });
    const offStatus = this.#session.on('status', (st) => {
      this.#state = st.state;
      if (st.state === 'live') this.#sessionError = null;
      this.#update();
    });
    const offError = this.#session.on('error', (e) => {
      // A refused filter ends only its own view, whose ready says so.
      if (e?.code === 'bad_request') return;
      this.#sessionError = e;
      this.#update();
    });
    const ac = new AbortController();
    const arm = () => {
      v.waitFor(v.version + 1, { signal: ac.signal }).then(() => {
        if (ac.signal.aborted) return;
        this.#update();
        arm();
      }, noop);
    };
    arm();
    return () => {
      offChange();
      offStatus();
      offError();
      ac.abort();
      this.#sessionError = null;
    };
  }

  /**
   * #readRecords reads every record of the view into #recs, unless #recs
   * already holds its version (or force).
   * @param {boolean} [force]
   */
  #readRecords(force = false) {
    const v = this.#view;
    if (!force && this.#at && this.#at.version === v.version && this.#at.epoch === v.epoch) return;
    const old = this.#recs;
    /** @type {Map<string, import('../viewsync.js').RecordOf<T>>} */
    const recs = new Map();
    for (const id of v.records.keys()) {
      const r = v.record(id);
      if (!r) continue;
      const was = old.get(id);
      recs.set(id, was && was.version === r.version && was.value === r.value ? was : Object.freeze(r));
    }
    const same = recs.size === old.size && [...recs].every(([id, r]) => old.get(id) === r);
    this.#at = { version: v.version, epoch: v.epoch };
    if (same) return;
    this.#recs = recs;
    this.#ids = [...recs.keys()].sort(byId);
    this.#records = Object.freeze(this.#ids.map((id) => /** @type {import('../viewsync.js').RecordOf<T>} */ (recs.get(id))));
  }

  /**
   * #applyChange updates #recs for the ids a change names.
   * @param {import('../viewsync.js').Change<T>} change
   */
  #applyChange(change) {
    const v = this.#view;
    const recs = this.#recs;
    for (const id of change.removed) recs.delete(id);
    for (const id of [...change.added, ...change.updated]) {
      const r = v.record(id);
      if (r) recs.set(id, Object.freeze(r));
      else recs.delete(id);
    }
    if (change.added.length || change.removed.length) this.#ids = [...recs.keys()].sort(byId);
    this.#records = Object.freeze(this.#ids.map((id) => /** @type {import('../viewsync.js').RecordOf<T>} */ (recs.get(id))));
    this.#at = { version: v.version, epoch: v.epoch };
  }

  /** #update makes a new snapshot if anything it shows changed, and tells the listeners. */
  #update() {
    if (this.#refresh()) this.#listeners.call(this.#snap);
  }

  /** #refresh makes a new snapshot if anything it shows changed; tells whether it did. */
  #refresh() {
    const n = this.#make();
    const o = this.#snap;
    if (o && o.records === n.records && o.version === n.version && o.synced === n.synced && o.status === n.status && o.error === n.error) return false;
    this.#snap = n;
    return true;
  }

  /** @returns {import('../viewsync.js').ViewState<T>} */
  #make() {
    const v = this.#view;
    // unreachable rejected ready before the first state: over once the
    // server answers (the session is live) or the view synced.
    if (this.#viewError?.code === 'unreachable' && (v.synced || this.#state === 'live')) this.#viewError = null;
    const error = this.#viewError;
    return Object.freeze({
      records: this.#records,
      version: v.version,
      synced: v.synced,
      status: this.#state,
      error: error ?? this.#sessionError,
    });
  }
}

/**
 * LiveStatus holds a session's status ({state, transport}, frozen), a new
 * object only when it changes.
 */
export class LiveStatus {
  /** @type {Session} */
  #session;
  /** @type {Readonly<Status>} */
  #snap;
  /** @type {Listeners<Readonly<Status>>} */
  #listeners;

  /** @param {Session} session */
  constructor(session) {
    this.#session = session;
    this.#snap = Object.freeze(session.status);
    this.#listeners = new Listeners(() => session.on('status', () => this.#update()));
  }

  /**
   * get returns the current status, the same object until it changes.
   * @returns {Readonly<Status>}
   */
  get = () => {
    if (!this.#listeners.active) this.#refresh();
    return this.#snap;
  };

  /**
   * listen calls fn with each new status; returns the function that stops it.
   * @param {(status: Readonly<Status>) => void} fn
   * @returns {() => void}
   */
  listen = (fn) => {
    if (!this.#listeners.active) this.#refresh();
    return this.#listeners.add(fn);
  };

  /**
   * subscribe follows the Svelte store contract: fn at once with the
   * current status, then with each new one.
   * @param {(status: Readonly<Status>) => void} fn
   * @returns {() => void}
   */
  subscribe = (fn) => {
    const stop = this.listen(fn);
    fn(this.#snap);
    return stop;
  };

  #update() {
    if (this.#refresh()) this.#listeners.call(this.#snap);
  }

  #refresh() {
    const st = this.#session.status;
    if (st.state === this.#snap.state && st.transport === this.#snap.transport) return false;
    this.#snap = Object.freeze(st);
    return true;
  }
}

/**
 * @param {string} a
 * @param {string} b
 */
function byId(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}
