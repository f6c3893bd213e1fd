// viewsync/svelte — Svelte stores of viewsync: a live view's state, or a
// session's connection status, as readable stores (the Svelte store
// contract: subscribe calls its function at once with the current value,
// then with each new one, and returns the function that stops it).
//
//   import { toStore } from 'viewsync/svelte';
//   const products = toStore(session.collection('products'));
//   // in a component: {#each $products.records as r (r.id)} … {/each}
//
// A View's own subscribe keeps its meaning (called with each change, not at
// once), which is why the store is another object. Types: svelte.d.ts.
import { liveStatus, liveView } from './viewsync/live.js';

/** @type {WeakMap<object, {subscribe: (run: (value: any) => void) => () => void}>} */
const stores = new WeakMap();

/**
 * toStore returns a readable store of the view's state: the same store
 * for the same view.
 * @template [T=import('./viewsync.js').JSONValue]
 * @param {import('./viewsync.js').View<T>} view
 * @returns {import('./svelte.js').Readable<import('./viewsync.js').ViewState<T>>}
 */
export function toStore(view) {
  return storeOf(view, () => liveView(view).subscribe);
}

/**
 * statusStore returns a readable store of the session's status.
 * @param {import('./viewsync.js').Session} session
 * @returns {import('./svelte.js').Readable<Readonly<import('./viewsync.js').Status>>}
 */
export function statusStore(session) {
  return storeOf(session, () => liveStatus(session).subscribe);
}

/**
 * @param {object} key
 * @param {() => (run: (value: any) => void) => () => void} subscribe
 */
function storeOf(key, subscribe) {
  let s = stores.get(key);
  if (!s) {
    s = Object.freeze({ subscribe: subscribe() });
    stores.set(key, s);
  }
  return s;
}
