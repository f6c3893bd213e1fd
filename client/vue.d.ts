// Types of viewsync/vue (vue.js): a Vue 3 composable over viewsync's views.
import type { ShallowRef } from 'vue';
import type { ConnectionState, JSONValue, RecordOf, Session, Status, View, ViewState, ViewsyncError } from './viewsync.js';

export type { ViewState };

/** What useView returns: read-only shallow refs of the view's state. */
export interface ViewRefs<T = JSONValue> {
  /** The whole snapshot (see ViewState); a new object only when something in it changes. */
  readonly snapshot: Readonly<ShallowRef<ViewState<T>>>;
  /** The records, an array of `{id, value, version}` sorted by id; a new array after each change. */
  readonly records: Readonly<ShallowRef<ReadonlyArray<Readonly<RecordOf<T>>>>>;
  readonly version: Readonly<ShallowRef<number>>;
  readonly synced: Readonly<ShallowRef<boolean>>;
  /** The state of the session's connection. */
  readonly status: Readonly<ShallowRef<ConnectionState>>;
  /** Why the view does not follow the collection, or null (see ViewState.error). */
  readonly error: Readonly<ShallowRef<ViewsyncError | null>>;
  /** Stops following the view (done by itself when the calling scope is disposed). */
  stop(): void;
}

/** What useSession returns: a read-only shallow ref of the status. */
export interface StatusRef extends Readonly<ShallowRef<Readonly<Status>>> {
  /** Stops following the session (done by itself when the calling scope is disposed). */
  stop(): void;
}

/**
 * Shallow refs of a live view's state that follow it until the current
 * effect scope (a component's setup, an `effectScope`) is disposed
 * (`onScopeDispose`), or `stop()` is called. Outside any scope, call
 * `stop()` yourself. It does not close the view.
 */
export function useView<T = JSONValue>(view: View<T>): ViewRefs<T>;

/** A shallow ref of the session's connection status, `{state, transport}`, that follows it until the current scope is disposed. */
export function useSession(session: Session): StatusRef;
