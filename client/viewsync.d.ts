// Types of viewsync.js, the browser client of viewsync (HTTP API v1).
// Hand-written. The modules take their JSDoc types from here, and
// api-check.ts makes tsc (scripts/test.sh) check that they provide what is
// declared.

/** Any JSON value: what a record holds. */
export type JSONValue = null | boolean | number | string | JSONValue[] | { [key: string]: JSONValue };

/**
 * A transport the session may use: WebSocket, Server-Sent Events,
 * newline-delimited JSON streamed over fetch, long-poll, poll.
 */
export type Transport = 'ws' | 'sse' | 'ndjson' | 'longpoll' | 'poll';

/** The state of a session's connection. */
export type ConnectionState = 'connecting' | 'live' | 'offline' | 'closed';

/** What `session.status` and 'status' listeners get. */
export interface Status {
  /**
   * connecting: trying to connect (also while falling back to another
   * transport); live: connected, changes arrive as they happen; offline: the
   * last attempt failed or the connection dropped, a reconnect is scheduled
   * (jittered exponential backoff, 250 ms doubling to 10 s); closed: after
   * `session.close()`.
   */
  state: ConnectionState;
  /** The transport in use or being tried. */
  transport: Transport;
}

/**
 * The error codes of the contract, plus the client's own:
 * `network` (no answer at all), `unreachable` (the session's attempts to
 * connect got no answer at all, `maxSilentAttempts` in a row), `closed` (the
 * session or view was closed), `bad_response` (an answer that does not
 * follow the contract).
 */
export type ErrorCode =
  | 'bad_request' | 'unauthorized' | 'forbidden' | 'not_found' | 'method_not_allowed'
  | 'precondition_failed' | 'too_large' | 'unsupported_media_type' | 'rate_limited'
  | 'internal' | 'bad_gateway' | 'unavailable' | 'timeout'
  | 'network' | 'unreachable' | 'closed' | 'bad_response';

/** Every failure rejects with a ViewsyncError. */
export class ViewsyncError extends Error {
  constructor(code: ErrorCode | string, message: string, status?: number);
  readonly name: 'ViewsyncError';
  /** The contract's error code (e.g. `precondition_failed`), or one of the client's. */
  readonly code: ErrorCode | string;
  /** The HTTP status (e.g. 412); for WebSocket answers the status that goes with the code; 0 when there was no answer. */
  readonly status: number;
}

export interface ConnectOptions {
  /** The server's base URL (may carry a path prefix). Default: the page's origin. */
  url?: string;
  /**
   * The bearer token, or a function returning it (called for every request
   * and connection, so it may refresh). Sent as `Authorization: Bearer …` on
   * HTTP requests (the streams included, which use fetch) and as the
   * `token` query parameter of the WebSocket URL, since browsers cannot set
   * headers on WebSockets. When the server ends a stream because the token
   * expired (WebSocket close 4401, SSE `error` event, NDJSON `error` line
   * with code `unauthorized`), the session emits an
   * `unauthorized` error, calls the function again for a fresh token and
   * resumes from its cursors at once; a request refused with 401 is retried
   * with backoff, also with a fresh token.
   */
  token?: string | (() => string | Promise<string>);
  /**
   * Forces one transport. Default 'auto': WebSocket, then SSE (NDJSON
   * instead when there is a token: a non-empty string, or a function that
   * last returned one or has not been called yet), then long-poll, then
   * poll; a transport is given up after two failures to
   * connect while the server still answers plain HTTP (a failure while the
   * server is unreachable does not count). The session stays on the
   * transport it settled on until closed.
   */
  transport?: Transport | 'auto';
  /** Collections to open at once (same as calling `collection` for each). */
  collections?: string[];
  /** Listener of status changes (same as `session.on('status', fn)`). */
  onStatus?: (status: Status) => void;
  /** The fetch to use. Default: the global fetch. */
  fetch?: typeof fetch;
  /** The WebSocket class to use. Default: the global WebSocket. */
  WebSocket?: typeof WebSocket;
  /** Poll transport: time between version checks, ms. Default 2000. */
  pollInterval?: number;
  /** Long-poll transport: how long the server holds a request, seconds (at most the server's --max-wait). Default 25. */
  longPollWait?: number;
  /** SSE and NDJSON: a stream silent this long (ms) is reconnected; the server pings idle streams. Default 45000. */
  idleTimeout?: number;
  /** Time allowed to connect (ms) before a try counts as failed. Default 10000. */
  openTimeout?: number;
  /** Reconnect backoff: full jitter, uniform in [0, min(cap, base·2ⁿ)) ms. Default {base: 250, cap: 10000}. */
  backoff?: { base?: number; cap?: number };
  /**
   * After this many attempts to connect in a row got no answer at all from
   * the server (a network error on every transport tried: no HTTP status,
   * no WebSocket opened) the session reports it once: an `unreachable`
   * error to 'error' listeners, whose message names the URL and asks
   * whether the server runs and, for a page on another origin, whether it
   * was started with `--cors-origin` and this page's origin (a browser
   * shows a CORS refusal only in its console). The `ready` of each view not
   * yet synced rejects with it, as does that of a view opened before the
   * server answers again. The session keeps retrying with its backoff and
   * goes live when the server answers; a later run of silent attempts is
   * reported again. An HTTP answer of any status (4xx, 5xx) is an answer.
   * 0 never reports. Default 5.
   */
  maxSilentAttempts?: number;
  /**
   * Offline-first: `true` or options. Each view's records and cursor are
   * kept in IndexedDB (per server, per principal — a hash of the token's
   * subject, or of the token; never the token — per view and filter); a
   * view opened again shows the cached state at once (`view.cached`) and
   * resumes from its cursor. Writes (`put`, `patch`, `delete`, `commit`,
   * and calls made with `{queue: true}`) go through a durable outbox: shown
   * at once over the view's records (`RecordOf.pending`), kept across
   * reloads, sent in order by one tab of the origin with an
   * `Idempotency-Key` each. Default: off.
   */
  persist?: boolean | PersistOptions;
}

/** Options of `connect({persist})`. */
export interface PersistOptions {
  /**
   * The application's schema tag: a cache written under another tag is
   * dropped when the session opens (the outbox is kept: the server judges
   * its writes). Default: ''.
   */
  version?: string;
  /** The IndexedDB database's name. Default: 'viewsync'. */
  database?: string;
  /**
   * Who the cache is for, in place of the one derived from the token
   * (never stored as given: use an opaque id).
   */
  principal?: string;
}

/**
 * What the page shows and has to send, for a status area:
 *   - `live`: connected, nothing queued;
 *   - `syncing`: connected, sending queued writes (or resuming cached views);
 *   - `cached`: not connected, showing the cache, nothing queued;
 *   - `offline`: not connected (with `pending` queued writes, if any);
 *   - `connecting`: first connection, nothing cached; `closed`.
 */
export interface SyncStatus {
  state: 'connecting' | 'live' | 'syncing' | 'cached' | 'offline' | 'closed';
  /** Writes queued in the outbox (every tab's) not yet settled. */
  pending: number;
}

/** A write in the outbox. */
export interface QueuedWrite {
  /** Its Idempotency-Key, made when it was queued; every send of it carries it. */
  key: string;
  kind: 'put' | 'patch' | 'delete' | 'commit' | 'call';
  /** '' for a call. */
  collection: string;
  /** put, patch, delete: the record. */
  id?: string;
  /** put: the value; patch: the merge patch. */
  value?: JSONValue;
  /** commit: the ops. */
  ops?: Op[];
  /** The preconditions, id → version (0: must not exist). */
  ifs?: Record<string, number>;
  /** call: its name and argument. */
  name?: string;
  arg?: JSONValue;
  /** When it was queued, ms since 1970. */
  queuedAt: number;
}

/** What 'outbox' listeners get: a write queued, sent (at `version`), or refused by the server (`error`: a 412 is `precondition_failed`). */
export type OutboxEvent =
  | { type: 'queued'; write: QueuedWrite }
  | { type: 'sent'; write: QueuedWrite; version: number }
  | { type: 'failed'; write: QueuedWrite; error: ViewsyncError };

/** Opens a session. It connects at once and reconnects by itself until closed. */
export function connect(options?: ConnectOptions): Session;

/** One op of a commit. */
export type Op =
  | { op: 'put'; id: string; value: JSONValue }
  | { op: 'delete'; id: string };

/** A record as the view holds it. */
export interface RecordOf<T = JSONValue> {
  id: string;
  value: T;
  /** The collection version of the commit that last wrote it (0 for a record only a queued write made). */
  version: number;
  /** With persist: a queued write shows here, not yet in the server's commits. */
  pending?: true;
}

interface ChangeBase {
  /** The epoch of the view after the change. */
  epoch: string;
  /** The version the view is at after the change. */
  version: number;
  /** Ids of records that are new to the view. */
  added: string[];
  /** Ids of records whose value changed (for a reset to another epoch: every kept record). */
  updated: string[];
  /** Ids of records gone from the view. */
  removed: string[];
  /**
   * added, updated and removed together. With persist, the ids of a
   * commit, catch-up or reset are the server's (what its state gained,
   * changed and lost); changed also lists the records whose shown value
   * moved because a queued write is over them or no longer is.
   */
  changed: string[];
}

/** One commit, applied whole, in version order, exactly once. */
export interface CommitChange extends ChangeBase {
  type: 'commit';
  ops: Op[];
  /** When the commit was made (RFC 3339), when the transport carries it. */
  at?: string;
}

/** A catch-up: the records written and the ids deleted since the view's cursor (a compacted stretch of history). */
export interface CatchUpChange<T = JSONValue> extends ChangeBase {
  type: 'catchup';
  records: RecordOf<T>[];
  deleted: string[];
}

/** A reset: the view's state was replaced by a snapshot. */
export interface ResetChange<T = JSONValue> extends ChangeBase {
  type: 'reset';
  records: RecordOf<T>[];
}

/** With persist: the queued writes over the view changed (one was queued, landed or was refused); the version did not move. */
export interface PendingChange extends ChangeBase {
  type: 'pending';
}

export type Change<T = JSONValue> = CommitChange | CatchUpChange<T> | ResetChange<T> | PendingChange;

/** The operators of a condition on one field, or on the record id (`"$id"`); all given must hold. */
export interface Condition {
  $eq?: JSONValue;
  $ne?: JSONValue;
  $in?: JSONValue[];
  $nin?: JSONValue[];
  $lt?: number | string;
  $lte?: number | string;
  $gt?: number | string;
  $gte?: number | string;
  /** true: the field is present; false: it is absent. */
  $exists?: boolean;
}

/**
 * A filter over a record's value, MongoDB-style, validated by the server
 * (a filter it does not take ends the view with a `bad_request` error):
 *   - `{"category": "lamp"}`: the field equals the value (a JSON value of
 *     any kind, compared whole); `{"dims.w": 40}`: dots name nested fields;
 *   - `{"price": {"$lt": 50, "$gte": 10}}`: a field's conditions, all of
 *     which hold (see Condition);
 *   - several fields in one object: all hold; `{"$and": [f1, f2]}`: every
 *     filter holds, `{"$or": [f1, f2]}`: at least one does;
 *   - `{"$id": "p1"}` or `{"$id": {"$in": ["p1", "p2"]}}`: the record's id.
 */
export interface Where {
  $and?: Where[];
  $or?: Where[];
  $id?: JSONValue | Condition;
  [path: string]: JSONValue | Condition | Where[] | undefined;
}

/** Options of `session.collection`. */
export interface CollectionOptions {
  /**
   * A filter: the view holds only the records whose value matches it, and
   * records move in and out of it live as they change (one that stops
   * matching is removed from the view, one that starts matching is added).
   * Omitted, null or `{}`: the whole collection.
   */
  where?: Where | null;
}

/** Preconditions of a single-record write. */
export interface WriteOptions {
  /** 0: only if the record does not exist (If-None-Match: *); V: only if the record is at version V (If-Match: "V"). */
  ifVersion?: number;
}

export class Session {
  private constructor();
  /** The current state and transport. */
  readonly status: Status;
  /** What the page shows and has to send (persist): live, syncing, cached, offline with N pending. */
  readonly sync: SyncStatus;
  /** The writes queued and not yet settled, in the order they go (every tab's); empty without persist. */
  readonly outbox: QueuedWrite[];
  /** Listens to status changes. Returns the function that stops listening. */
  on(type: 'status', fn: (status: Status) => void): () => void;
  /** Listens to changes of `sync`. */
  on(type: 'sync', fn: (sync: SyncStatus) => void): () => void;
  /** Listens to the outbox: each write queued, sent or refused (in any tab of the origin). */
  on(type: 'outbox', fn: (event: OutboxEvent) => void): () => void;
  /**
   * Listens to errors no promise reports: an HTTP answer that made the
   * transport reconnect (401, 403, 5xx, …), a WebSocket error message that
   * answers no request, `unreachable` after `maxSilentAttempts` attempts to
   * connect got no answer at all.
   */
  on(type: 'error', fn: (error: ViewsyncError) => void): () => void;
  /**
   * The live view of a collection, or with `options.where` of the records
   * of a collection that match a filter (a filtered view, "live query");
   * the same object for the same name and an equal filter (compared as
   * JSON with sorted keys) while it is open, another for another filter.
   * Throws a ViewsyncError (bad_request) for an invalid name
   * (`^[a-z0-9][a-z0-9_.-]{0,63}$`) or a `where` that is not a JSON object;
   * the server judges the filter itself, and ends a view whose filter it
   * does not take: its `ready` rejects with the `bad_request` error, which
   * 'error' listeners hear too.
   */
  collection<T = JSONValue>(name: string, options?: CollectionOptions): View<T>;
  /**
   * Runs the named server function with `arg` (over the WebSocket when it is
   * open, else POST /v1/calls/{name}). Resolves only once every view of
   * this session includes the versions the answer lists (read-your-writes),
   * the filtered views of a collection as well as its whole view:
   * collections not open are followed for the wait and let go after.
   * `context` is handed back untouched, so a caller can tell its calls apart.
   * With persist, `queue: true` sends it through the outbox (in order with
   * the writes, once connected, also after a reload; the promise only
   * lives as long as the page).
   */
  call<R = JSONValue, C = undefined>(name: string, arg?: JSONValue, context?: C, options?: { signal?: AbortSignal; queue?: boolean }): Promise<{ result: R; context: C }>;
  /** Closes the connection and every view; pending waits reject with code `closed`. */
  close(): void;
}

/**
 * The live view of a collection, or of its records that match a filter
 * (`where`). A filtered view has the collection's versions: its `version`
 * moves past commits that do not concern it too (without a change to
 * subscribers), so that `waitFor` the version of any write to the
 * collection resolves. Writes through a filtered view go to the collection
 * as through its whole view, whether or not what they write matches: a
 * record written so that it matches enters the view, one that no longer
 * matches leaves it.
 */
export class View<T = JSONValue> {
  private constructor();
  /** The collection's name. */
  readonly name: string;
  /** The session the view belongs to (whose `status` and 'error' events are its connection's). */
  readonly session: Session;
  /** The filter of a filtered view (a deep-frozen copy of the one given), null for the whole collection. */
  readonly where: Readonly<Where> | null;
  /**
   * The records: id → value. Updated in place (the same Map for the whole
   * life of the view, also across resets). Read-only for callers.
   */
  readonly records: ReadonlyMap<string, T>;
  /** The collection version the view includes; 0 before the first sync. */
  readonly version: number;
  /** The history the view follows; null before the first sync. */
  readonly epoch: string | null;
  /** Whether the view has received its first state. */
  readonly synced: boolean;
  /** With persist: the view shows the state the cache kept and has not heard from the server since. */
  readonly cached: boolean;
  /**
   * Resolves (with the version) once the view has its first state. Rejects
   * with the session's `unreachable` error when the server did not answer
   * `maxSilentAttempts` attempts in a row first (see ConnectOptions); the
   * view still syncs once the server answers: watch `synced`, `subscribe`
   * or the session's status.
   */
  readonly ready: Promise<number>;
  /** The value of record `id`, or undefined. */
  get(id: string): T | undefined;
  /** Record `id` with its version, or undefined. */
  record(id: string): RecordOf<T> | undefined;
  /**
   * Calls fn after each change is applied (not for the state already there:
   * read `records` first, or wait for `ready`). Returns the function that
   * stops it.
   */
  subscribe(fn: (change: Change<T>) => void): () => void;
  /**
   * Resolves once the view includes `version` (or moved to another epoch).
   * A filtered view includes every version up to its own, whether or not
   * the commit concerned it.
   */
  waitFor(version: number, options?: { signal?: AbortSignal }): Promise<number>;
  /**
   * Writes a whole value (over the WebSocket when open, else PUT). Resolves
   * the commit's version; the view includes the write once `waitFor` of it
   * resolves. Fails with precondition_failed (412) when ifVersion does not hold.
   * With persist, this and the other writes go through the outbox: shown at
   * once (pending), sent in order when connected; the promise resolves
   * once the server took the write (it lives as long as the page: after a
   * reload, watch the session's 'outbox' events).
   */
  put(id: string, value: T, options?: WriteOptions): Promise<number>;
  /**
   * Applies a JSON merge patch (RFC 7396) over HTTP (PATCH). For the ids
   * "." and "..", which no URL path can carry, the merge is done here and
   * written with the record's version as precondition.
   */
  patch(id: string, patch: JSONValue, options?: WriteOptions): Promise<number>;
  /** Deletes a record; not_found (404) when it does not exist. */
  delete(id: string, options?: WriteOptions): Promise<number>;
  /** Applies ops atomically, all or nothing, if every precondition holds (id → version; 0: must not exist). */
  commit(ops: Op[], options?: { if?: Record<string, number> }): Promise<number>;
  /**
   * Who is present in the collection, and this client's own presence there.
   * The view follows it from the first time it is read (its subscription is
   * made again, from its cursor). Needs a push transport (WebSocket, SSE,
   * NDJSON).
   */
  readonly presence: Presence;
  /** Stops following the collection. The state stays readable. */
  close(): void;
}

/** A member present in a collection: one principal, whatever its tabs. */
export interface PresenceMember {
  /** Opaque id: one per authenticated principal (several tabs are one member), one per connection for anonymous ones. */
  member: string;
  /** The record the member is on, if any. */
  record?: string;
  /** The state the member set last, such as `{name: "Ana", editing: "p7"}`. */
  state: { [key: string]: JSONValue };
}

/** A change of a collection's presence. */
export interface PresenceChange {
  /** sync: every member at once (after each (re)connection); count: only the count changed (count-only mode, above the server's member limit). */
  type: 'sync' | 'join' | 'update' | 'leave' | 'count';
  /** The member of a join, update or leave. */
  member: string | null;
  /** How many members are present. */
  count: number;
}

/**
 * A view's presence: the members present in its collection, and this
 * client's own state there. Ephemeral: the server stores nothing of it. A
 * client's state lasts while its connection does, kept alive by heartbeats
 * (every third of the server's TTL); a client gone without a word leaves
 * within the TTL. A principal reading only some rows does not see members
 * on the others, and cannot set its presence on one of them.
 */
export class Presence {
  private constructor();
  /** member id → member, this client's own included. Empty in count-only mode. */
  readonly members: ReadonlyMap<string, PresenceMember>;
  /** How many members are present. */
  readonly count: number;
  /** This client's member id, once the server said it. */
  readonly self: string | null;
  /** Whether the server sent the members yet. */
  readonly synced: boolean;
  /** The members but this client. */
  others(): PresenceMember[];
  /** The members on record `id`, this client excluded. */
  on(id: string): PresenceMember[];
  /** Calls fn after each change; returns the function that stops it. */
  subscribe(fn: (change: PresenceChange) => void): () => void;
  /**
   * Publishes this client's state (a JSON object, at most the server's
   * `--presence-max-state`), about one record or the whole collection; it
   * is kept and published again after a reconnect until `clear`.
   */
  set(state: { [key: string]: JSONValue }, options?: { record?: string }): Promise<void>;
  /** Withdraws this client's presence. */
  clear(): Promise<void>;
}

/**
 * A view's state as the framework bindings (`viewsync/react`,
 * `viewsync/vue`, `viewsync/svelte`) hand it out: an immutable snapshot,
 * a new object only when something it shows changes, shared by everything
 * that shows the same view.
 */
export interface ViewState<T = JSONValue> {
  /**
   * The view's records as an array sorted by id (code unit order, as
   * bindTable's rows), frozen; a new array after each change. A record's
   * object stays the same while the record does not change, so a
   * component memoized on it is not redrawn.
   */
  readonly records: ReadonlyArray<Readonly<RecordOf<T>>>;
  /** The collection version the view includes (0 before the first sync). */
  readonly version: number;
  /** Whether the view has received its first state. */
  readonly synced: boolean;
  /** The state of the session's connection. */
  readonly status: ConnectionState;
  /**
   * Why the view does not follow the collection, or null: its `ready`
   * rejected (a filter the server refused: `bad_request`, which stays;
   * `closed`; `unreachable` before the first state, until the session is
   * live),
   * else the last error the session reported (`unreachable`,
   * `unauthorized`, a refusal that made it reconnect, …; another view's
   * refused filter excepted) until it is live again or the view changes.
   */
  readonly error: ViewsyncError | null;
}

/** What a row's conflict is. */
export interface Conflict<T = JSONValue> {
  /** The record was deleted remotely while the user edited it. */
  deleted: boolean;
  /** The edited fields whose remote value changed since the user began (all edited fields after a refused save, until the change arrives). */
  fields: string[];
  /** The record as it now is remotely (null when deleted, or not known yet). */
  theirs: RecordOf<T> | null;
}

/** The state of one row of a binding. */
export interface RowState<T = JSONValue> {
  /** The fields the user has edited and not saved. */
  dirty: string[];
  conflict: Conflict<T> | null;
  /** A save is in flight. */
  saving: boolean;
}

export interface BindTableOptions<T = JSONValue> {
  /** The element whose children are the rows (a tbody, ul, div…). The binding owns its children. */
  container: Element;
  /**
   * Makes the row of a new record: an element, or `{cells}` (strings or
   * nodes, set as text) for a tr of td (in a table) or a div of divs.
   * Controls inside it with `data-field="path"` (a field of the value,
   * dots for nested fields) are filled and guarded by the binding.
   */
  render(record: RecordOf<T>): Element | { cells: Array<string | number | Node | null | undefined> };
  /** Called after a row is made and after each remote change to it (fields already synced), for what is not a data-field control. */
  update?(el: Element, record: RecordOf<T>, state: RowState<T>): void;
  /** Row order. Default: by id. When given, rows also move when a value changes (never the row holding focus). */
  sort?(a: RecordOf<T>, b: RecordOf<T>): number;
  /** Which records get a row. Default: all. */
  filter?(record: RecordOf<T>): boolean;
  /** Reads a control's value as JSON. Default: checkbox → boolean, number input (or data-type="number") → number, empty → null, else string. */
  read?(control: Element): JSONValue;
  /** Checks a row's value before it is saved; throwing stops the save, and the error reaches onError. */
  validate?(value: JSONValue, id: string): void;
  /** Shows a value in a control. Default: the value as text (JSON for objects); checkbox → checked. */
  write?(control: Element, value: JSONValue | undefined): void;
  /** A row's conflict appeared, changed, or went away (conflict null). */
  onConflict?(el: Element, conflict: Conflict<T> | null, record: RecordOf<T> | null): void;
  /** A save or delete failed otherwise than by a conflict. */
  onError?(error: ViewsyncError, id: string): void;
  /** A save was written; version is its commit's. */
  onSaved?(el: Element, version: number): void;
  /**
   * Writes a row's save. Default: `view.put(id, value, {ifVersion})`. For a
   * collection clients cannot write (one fed from a PostgreSQL table), a
   * call that writes to the source instead: it must resolve the version of
   * a commit that includes the write (what `session.call` waits for) and
   * keep the precondition, rejecting with code `precondition_failed` when
   * the record is no longer at `ifVersion` (0: when it exists), so that
   * the conflict shows.
   */
  put?(id: string, value: T, options: { ifVersion: number }): Promise<number>;
  /** Enter in a control saves the row, Escape discards its edits. Default true. */
  keys?: boolean;
  /**
   * Shows who is editing which row, and tells the others where this
   * client is: with a state (such as `{name: "Ana"}`), a control gaining
   * focus in a row publishes `{...state, editing: id}` on that record
   * through `view.presence`, and leaving the rows publishes `state`
   * alone. Each row others are on gets `data-editing` (their states'
   * `name`s, comma-separated, or "someone") and the class `vs-editing`,
   * for a badge the page styles; the row's fields stay the user's own.
   */
  presence?: { [key: string]: JSONValue };
}

/**
 * A keyed, form-safe binding of a view to the DOM.
 *
 * Rows: one per record, `data-key` = id, kept in `sort` order; a change
 * patches only the rows it touches (insert, move, remove by key, update only
 * changed rows). On a filtered view rows come and go live as records move
 * in and out of it, a save that moves its record out included; a record
 * that leaves while its row is being edited looks deleted to the row (the
 * view cannot tell the two apart): the conflict `"deleted"`.
 *
 * Form safety: a `data-field` control is never overwritten while it has
 * focus (it gets the class `vs-stale` and catches up when it loses
 * focus, unless edited) nor once the user
 * has typed into it (an `input` event) until the row is saved or its edits
 * discarded. Edited rows get the class `vs-dirty` and `data-dirty="f1 f2"`;
 * edited controls the class `vs-dirty`.
 *
 * Conflicts: when a record being edited changes remotely, each edited field
 * whose remote value differs from the value the user started from (and from
 * what the user typed) is in conflict: the row gets the class `vs-conflict`
 * and `data-conflict="f1 f2"` (or `"deleted"`), those controls the class
 * `vs-conflict`, and `onConflict` is called. The user's text stays. Remote
 * changes to fields not being edited are shown and simply become the base.
 *   - keep mine (`data-action="keep-mine"`, `keepMine(id)`): writes the
 *     edited fields over the record with If-Match of the version the
 *     conflict shows — the one the user saw and chose to override — so the
 *     server decides: if the record moved again meanwhile it answers 412 and
 *     the conflict shows again, with the newer version. A deleted record is
 *     recreated (If-None-Match: *).
 *   - take theirs (`data-action="take-theirs"` or `"discard"`,
 *     `takeTheirs(id)`): drops the edits and shows the remote value (removes
 *     the row of a deleted record).
 *
 * Saving (`data-action="save"`, Enter, `save(id)`) writes the whole value
 * with the edited fields, with If-Match of the version shown; a row in
 * conflict is not saved (precondition_failed) until the user chooses.
 * `data-action="delete"` deletes the record. A save in flight adds
 * `vs-saving`.
 */
export function bindTable<T = JSONValue>(view: View<T>, options: BindTableOptions<T>): Binding<T>;

export interface Binding<T = JSONValue> {
  /** Saves a row's edits; resolves the version, or undefined when nothing was written (nothing edited, or a conflict, now shown). */
  save(id: string): Promise<number | undefined>;
  /** Writes the user's edits over the version the conflict shows. */
  keepMine(id: string): Promise<number | undefined>;
  /** Drops the user's edits and shows the record as it is. */
  takeTheirs(id: string): void;
  /** Stops updating the DOM and listening to it. */
  destroy(): void;
}
