// Types of viewsync/react (react.js): React hooks over viewsync's views.
import type { JSONValue, Session, Status, View, ViewState } from './viewsync.js';

export type { ViewState };

/**
 * The state of a live view, for rendering: `{records, version, synced,
 * status, error}` (see ViewState; `records` is an array of `{id, value,
 * version}` sorted by id). The component redraws when the view changes,
 * the session's connection changes state, or an error comes; the object
 * returned changes identity only then, so it can go into dependency
 * arrays and memo comparisons. Built on `useSyncExternalStore`: it never
 * suspends, renders before the first state with `synced: false` and no
 * records, and shows why a view fails in `error` (a filter the server
 * refused, a server that does not answer). It does not close the view.
 */
export function useView<T = JSONValue>(view: View<T>): ViewState<T>;

/** The session's connection status, `{state, transport}`; redraws when it changes. */
export function useSession(session: Session): Readonly<Status>;
