// viewsync/vue — a Vue 3 composable of viewsync: a live view as shallow refs
// that follow it, let go when the calling scope (a component's setup, an
// effectScope) is disposed.
//
//   import { useView } from 'viewsync/vue';
//   const { records, synced, status, error } = useView(products);
//
// Types: vue.d.ts.
import { getCurrentScope, onScopeDispose, shallowRef } from 'vue';
import { liveStatus, liveView } from './viewsync/live.js';

/**
 * useView returns shallow refs of the view's state, kept up to date until
 * the current scope is disposed (or stop is called).
 * @template [T=import('./viewsync.js').JSONValue]
 * @param {import('./viewsync.js').View<T>} view
 * @returns {import('./vue.js').ViewRefs<T>}
 */
export function useView(view) {
  const live = liveView(view);
  const s = live.get();
  const snapshot = shallowRef(s);
  const records = shallowRef(s.records);
  const version = shallowRef(s.version);
  const synced = shallowRef(s.synced);
  const status = shallowRef(s.status);
  const error = shallowRef(s.error);
  /** @param {import('./viewsync.js').ViewState<T>} n */
  const set = (n) => {
    // A shallow ref triggers only when its value changes.
    snapshot.value = n;
    records.value = n.records;
    version.value = n.version;
    synced.value = n.synced;
    status.value = n.status;
    error.value = n.error;
  };
  const stop = live.listen(set);
  set(live.get());
  if (getCurrentScope()) onScopeDispose(stop);
  return { snapshot, records, version, synced, status, error, stop };
}

/**
 * useSession returns a shallow ref of the session's status, kept up to
 * date until the current scope is disposed.
 * @param {import('./viewsync.js').Session} session
 * @returns {import('./vue.js').StatusRef}
 */
export function useSession(session) {
  const live = liveStatus(session);
  const status = shallowRef(live.get());
  const stop = live.listen((st) => { status.value = st; });
  status.value = live.get();
  if (getCurrentScope()) onScopeDispose(stop);
  return Object.assign(status, { stop });
}
