// Presence: who else is here, and what they are doing, in a view's
// collection. Ephemeral: nothing of it is stored.
import { ViewsyncError } from './errors.js';
import { noop } from './util.js';

/**
 * @typedef {import('../viewsync.js').JSONValue} JSONValue
 * @typedef {import('../viewsync.js').PresenceMember} PresenceMember
 * @typedef {import('../viewsync.js').PresenceChange} PresenceChange
 * @typedef {{state: Record<string, JSONValue>, record?: string}} Desired
 */

/** Heartbeats go at this share of the server's TTL. */
const HEARTBEAT_SHARE = 1 / 3;
/** The TTL assumed until the server says (its default). */
const DEFAULT_TTL = 30_000;
/** A set the server refused as too frequent is tried again after this. */
const RETRY_LIMITED = 1000;

/**
 * Presence is a view's presence: the members present in its collection
 * (members, count, self) and this client's own state (set, clear). The
 * server sends a sync, then joins, updates and leaves; the client
 * heartbeats its own state and publishes it again after a reconnect. It
 * needs a push transport (WebSocket, SSE, NDJSON); over long-poll and poll
 * it stays empty and set rejects.
 */
export class Presence {
  /** @type {import('./view.js').View<any>} */
  #view;
  /** @type {Map<string, PresenceMember>} */
  #members = new Map();
  #count = 0;
  /** @type {string | null} */
  #self = null;
  /** @type {string | null} the stream's session (SSE, NDJSON) */
  #session = null;
  #ttl = DEFAULT_TTL;
  /** @type {Desired | null} what this client publishes */
  #desired = null;
  /** @type {Set<(change: PresenceChange) => void>} */
  #subs = new Set();
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #beat;
  /** @type {ReturnType<typeof setTimeout> | undefined} a set again after a refusal */
  #retry;
  #synced = false;

  /** @param {import('./view.js').View<any>} view */
  constructor(view) { this.#view = view; }

  /** members maps member id → {member, record?, state}, this client's own included. */
  get members() { return /** @type {ReadonlyMap<string, PresenceMember>} */ (this.#members); }
  /** count is how many members are present (in count-only mode, the only figure). */
  get count() { return this.#count; }
  /** self is this client's member id, once the server said it. */
  get self() { return this.#self; }
  /** synced tells whether the server sent the members yet. */
  get synced() { return this.#synced; }

  /**
   * others returns the members but this client.
   * @returns {PresenceMember[]}
   */
  others() { return [...this.#members.values()].filter((m) => m.member !== this.#self); }

  /**
   * on returns the members present on record id, this client excluded.
   * @param {string} id
   * @returns {PresenceMember[]}
   */
  on(id) { return this.others().filter((m) => m.record === id); }

  /**
   * subscribe calls fn with each change; returns the unsubscribe function.
   * @param {(change: PresenceChange) => void} fn
   * @returns {() => void}
   */
  subscribe(fn) {
    this.#subs.add(fn);
    return () => { this.#subs.delete(fn); };
  }

  /**
   * set publishes this client's state in the collection, optionally about
   * one record; it is kept alive by heartbeats, and published again after
   * a reconnect, until clear. Resolves once the server took it.
   * @param {Record<string, JSONValue>} state
   * @param {{record?: string}} [options]
   * @returns {Promise<void>}
   */
  set(state, { record } = {}) {
    if (!state || typeof state !== 'object' || Array.isArray(state)) {
      return Promise.reject(new ViewsyncError('bad_request', 'presence.set: the state is an object'));
    }
    this.#desired = record == null ? { state } : { state, record };
    this.#schedule();
    return this.#publish().catch((e) => {
      // Over the server's rate of sets (--presence-set-rate): the state
      // set last goes once the rate allows, so that the others see it.
      if (e?.code === 'rate_limited') this.#later();
      throw e;
    });
  }

  /**
   * clear withdraws this client's presence. Resolves once the server took it.
   * @returns {Promise<void>}
   */
  clear() {
    const had = this.#desired !== null;
    this.#desired = null;
    this.#schedule();
    if (!had || !this.#synced) return Promise.resolve();
    return this.#send({ state: null });
  }

  // --- internal ---

  /**
   * _message applies a presence message from the view's transport.
   * @param {any} m
   */
  _message(m) {
    switch (m.event) {
      case 'sync':
        this.#members = new Map();
        for (const x of m.members || []) this.#members.set(x.member, member(x));
        this.#count = typeof m.count === 'number' ? m.count : this.#members.size;
        if (m.self) this.#self = m.self;
        if (m.session) this.#session = m.session;
        if (typeof m.ttl === 'number' && m.ttl > 0) this.#ttl = m.ttl;
        this.#synced = true;
        // A new stream or connection: publish this client's state again.
        if (this.#desired && m.self) this.#publish().catch(noop);
        this.#schedule();
        break;
      case 'join': case 'update':
        this.#members.set(m.member, member(m));
        this.#count = this.#members.size;
        break;
      case 'leave':
        this.#members.delete(m.member);
        this.#count = this.#members.size;
        break;
      case 'count':
        this.#count = m.count;
        break;
      default:
        return;
    }
    /** @type {PresenceChange} */
    const ch = { type: m.event, member: m.member ?? null, count: this.#count };
    for (const fn of [...this.#subs]) {
      try { fn(ch); } catch (e) { queueMicrotask(() => { throw e; }); }
    }
  }

  /** _down forgets the session of a stream that ended; the next sync brings another. */
  _down() {
    this.#session = null;
    this.#synced = false;
  }

  /** _close stops the heartbeats. */
  _close() {
    this.#desired = null;
    this.#schedule();
  }

  #publish() {
    const d = this.#desired;
    if (!d) return Promise.resolve();
    if (!this.#synced) return Promise.resolve(); // sent at the sync
    return this.#send({ ...(d.record != null ? { record: d.record } : {}), state: d.state });
  }

  // #later publishes the state set last after RETRY_LIMITED, once
  // however many sets were refused meanwhile.
  #later() {
    if (this.#retry !== undefined) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.#publish().catch((e) => {
        if (e?.code === 'rate_limited') this.#later();
      });
    }, RETRY_LIMITED);
    /** @type {any} */ (this.#retry)?.unref?.();
  }

  // Heartbeats run while this client publishes a state.
  #schedule() {
    clearInterval(this.#beat);
    this.#beat = undefined;
    if (!this.#desired) return;
    this.#beat = setInterval(() => {
      if (!this.#synced) return;
      this.#send({}).catch((e) => {
        // Not present (the TTL passed while away): publish again.
        if (e?.code === 'not_found') this.#publish().catch(noop);
      });
    }, Math.max(1000, this.#ttl * HEARTBEAT_SHARE));
    /** @type {any} */ (this.#beat)?.unref?.();
  }

  /**
   * #send sends a presence body (no state: a heartbeat) over the view's
   * transport.
   * @param {{record?: string, state?: JSONValue}} body
   * @returns {Promise<void>}
   */
  #send(body) {
    return this.#view.session._presence(this.#view, this.#session, body);
  }
}

/**
 * @param {any} x
 * @returns {PresenceMember}
 */
function member(x) {
  /** @type {PresenceMember} */
  const m = { member: x.member, state: x.state ?? {} };
  if (x.record != null) m.record = x.record;
  return m;
}
