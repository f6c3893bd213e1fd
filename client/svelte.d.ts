// Types of viewsync/svelte (svelte.js): readable stores over viewsync's views.
import type { JSONValue, Session, Status, View, ViewState } from './viewsync.js';

export type { ViewState };

/**
 * A readable store, as Svelte's store contract has it (and Svelte's own
 * `Readable` type, which it satisfies): `subscribe(run)` calls `run` at
 * once, synchronously, with the current value, then with each new value,
 * and returns the function that stops it.
 */
export interface Readable<V> {
  subscribe(run: (value: V) => void): () => void;
}

/**
 * A readable store of a live view's state (see ViewState): in a
 * component, `$store.records`, `$store.synced`, `$store.error`. The same
 * store for the same view; it follows the view while something
 * subscribes. It does not close the view.
 *
 * The View itself is not a store: its `subscribe(fn)` calls `fn` with each
 * change and not at once, and keeps that meaning.
 */
export function toStore<T = JSONValue>(view: View<T>): Readable<ViewState<T>>;

/** A readable store of the session's connection status, `{state, transport}`. */
export function statusStore(session: Session): Readable<Readonly<Status>>;
