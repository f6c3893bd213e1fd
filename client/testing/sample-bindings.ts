// A program as a user of the published package writes it with a framework:
// it imports the subpath exports 'viewsync/react', 'viewsync/vue' and
// 'viewsync/svelte' as installed from the packed tarball, with React's and
// Vue's types beside them, and uses every public name of react.d.ts,
// vue.d.ts and svelte.d.ts. test/pack.test.js type-checks it with tsc (it
// is never run) and checks that it names every export and member.
import { connect, type ConnectionState, type RecordOf, type Status, type View, type ViewState, type ViewsyncError } from 'viewsync';
import { useSession, useView } from 'viewsync/react';
import { useSession as useVueSession, useView as useVueView, type StatusRef, type ViewRefs } from 'viewsync/vue';
import { statusStore, toStore, type Readable } from 'viewsync/svelte';
import { createElement, memo, type ReactElement } from 'react';
import { computed, defineComponent, h, type ComputedRef, type ShallowRef } from 'vue';

type Product = { name: string; price: number };

const session = connect({ url: 'https://sync.example.com' });
const products: View<Product> = session.collection<Product>('products');
products.session satisfies typeof session;

// React: the hooks in a component.
const Row = memo(function Row({ record }: { record: Readonly<RecordOf<Product>> }): ReactElement {
  return createElement('li', null, `${record.value.name}: ${record.value.price.toFixed(2)}`);
});

export function ProductList(): ReactElement {
  const state: ViewState<Product> = useView(products);
  const { records, version, synced, status, error } = state;
  const conn: Readonly<Status> = useSession(session);
  const s: ConnectionState = status;
  const e: ViewsyncError | null = error;
  if (e) return createElement('p', { role: 'alert' }, `${e.code}: ${e.message}`);
  if (!synced) return createElement('p', null, `${s} over ${conn.transport}…`);
  return createElement('ul', { 'data-version': version },
    records.map((r) => createElement(Row, { key: r.id, record: r })));
}

// Vue: the composable in a component's setup, rendered with h().
export const VueList = defineComponent({
  setup() {
    const refs: ViewRefs<Product> = useVueView(products);
    const conn: StatusRef = useVueSession(session);
    const total: ComputedRef<number> = computed(() => refs.records.value.reduce((sum, r) => sum + r.value.price, 0));
    const snap: ViewState<Product> = refs.snapshot.value;
    const status: Readonly<ShallowRef<ConnectionState>> = refs.status;
    void snap;
    return () => refs.error.value
      ? h('p', { role: 'alert' }, refs.error.value.message)
      : h('ul', { 'data-version': refs.version.value, 'data-synced': String(refs.synced.value), 'data-status': `${status.value}/${conn.value.transport}` },
        [...refs.records.value.map((r) => h('li', { key: r.id }, r.value.name)), h('li', null, total.value.toFixed(2))]);
  },
  unmounted() {
    // Let go with the component's scope; stop() is for use outside one.
  },
});
const outside = useVueView(products);
outside.stop();
useVueSession(session).stop();

// Svelte: readable stores (Svelte's `$products` in a component).
const store: Readable<ViewState<Product>> = toStore(products);
const stop: () => void = store.subscribe((state) => {
  for (const r of state.records) console.log(r.id, r.value.name, r.version);
});
stop();
const conn: Readable<Readonly<Status>> = statusStore(session);
conn.subscribe((st) => console.log(st.state))();
