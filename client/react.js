// viewsync/react — React bindings of viewsync: hooks that render a live view,
// or a session's connection status, and redraw when it changes. Built on
// React's useSyncExternalStore: no Suspense, no effects of their own.
//
//   import { useView } from 'viewsync/react';
//   const { records, synced, status, error } = useView(products);
//
// Types: react.d.ts.
import { useSyncExternalStore } from 'react';
import { liveStatus, liveView } from './viewsync/live.js';

/**
 * useView returns the view's state: {records, version, synced, status,
 * error}, a frozen snapshot that changes identity only when the view, its
 * session's state or its error changes.
 * @template [T=import('./viewsync.js').JSONValue]
 * @param {import('./viewsync.js').View<T>} view
 * @returns {import('./viewsync.js').ViewState<T>}
 */
export function useView(view) {
  const live = liveView(view);
  return useSyncExternalStore(live.listen, live.get, live.get);
}

/**
 * useSession returns the session's status ({state, transport}, frozen), a
 * new object only when it changes.
 * @param {import('./viewsync.js').Session} session
 * @returns {Readonly<import('./viewsync.js').Status>}
 */
export function useSession(session) {
  const live = liveStatus(session);
  return useSyncExternalStore(live.listen, live.get, live.get);
}
