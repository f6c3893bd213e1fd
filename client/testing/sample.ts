// A program as a user of the published package writes it: it imports
// 'viewsync' as installed from the packed tarball and uses every public
// name of viewsync.d.ts. test/pack.test.js type-checks it with tsc (it is
// never run) and checks that it names every export and member.
import {
  bindTable,
  connect,
  ViewsyncError,
  type Binding,
  type BindTableOptions,
  type CatchUpChange,
  type Change,
  type CollectionOptions,
  type OutboxEvent,
  type PendingChange,
  type PersistOptions,
  type QueuedWrite,
  type SyncStatus,
  type CommitChange,
  type Condition,
  type Conflict,
  type ConnectionState,
  type ConnectOptions,
  type ErrorCode,
  type JSONValue,
  type Op,
  type Presence,
  type PresenceChange,
  type PresenceMember,
  type RecordOf,
  type ResetChange,
  type RowState,
  type Session,
  type Status,
  type Transport,
  type View,
  type Where,
  type WriteOptions,
} from 'viewsync';

type Product = { name: string; price: number; category?: string };

const transport: Transport = 'ws';
const options: ConnectOptions = {
  url: 'https://sync.example.com',
  token: async () => 'a-token',
  transport,
  collections: ['products'],
  onStatus: (s: Status) => console.log(s.state, s.transport),
  fetch: globalThis.fetch,
  WebSocket: globalThis.WebSocket,
  pollInterval: 2000,
  longPollWait: 25_000,
  idleTimeout: 45_000,
  openTimeout: 10_000,
  backoff: { base: 250, cap: 10_000 },
  maxSilentAttempts: 5,
};
const session: Session = connect(options);
const state: ConnectionState = session.status.state;
console.log(state);
const stopStatus = session.on('status', (s) => console.log(s.state));
const stopErrors = session.on('error', (e: ViewsyncError) => {
  const code: ErrorCode | string = e.code;
  console.log(e.name, code, e.status, e.message);
});

const cheap: Condition = { $lt: 50, $gte: 10, $ne: 20, $in: [15, 30], $nin: [16], $lte: 49, $gt: 9, $eq: 25, $exists: true };
const where: Where = { category: 'lighting', price: cheap, $or: [{ 'dims.w': { $gt: 40 } }, { $id: { $in: ['p1'] } }], $and: [{}] };
const lighting: CollectionOptions = { where };
const lamps: View<Product> = session.collection<Product>('products', lighting);
const all = session.collection('products');
console.log(lamps.name, lamps.where, lamps.records.size, lamps.version, lamps.epoch, lamps.synced, all.where === null);

async function main(): Promise<void> {
  const version: number = await lamps.ready;
  const p: Product | undefined = lamps.get('p1');
  const r: RecordOf<Product> | undefined = lamps.record('p1');
  console.log(version, p?.name, r?.id, r?.value.price, r?.version);

  const stop = lamps.subscribe((change: Change<Product>) => {
    console.log(change.epoch, change.version, change.added, change.updated, change.removed, change.changed);
    switch (change.type) {
      case 'commit': {
        const c: CommitChange = change;
        for (const op of c.ops) console.log(op.op, op.id, c.at);
        break;
      }
      case 'catchup': {
        const c: CatchUpChange<Product> = change;
        console.log(c.records.length, c.deleted);
        break;
      }
      case 'reset': {
        const c: ResetChange<Product> = change;
        console.log(c.records.map((rec) => rec.value.name));
        break;
      }
    }
  });

  const ifNew: WriteOptions = { ifVersion: 0 };
  const v1 = await lamps.put('p9', { name: 'Desk lamp', price: 30, category: 'lighting' }, ifNew);
  const v2 = await lamps.patch('p9', { price: 25 } satisfies JSONValue, { ifVersion: v1 });
  const ops: Op[] = [
    { op: 'put', id: 'p10', value: { name: 'Floor lamp', price: 80 } },
    { op: 'delete', id: 'p9' },
  ];
  const v3 = await lamps.commit(ops, { if: { p9: v2 } });
  await lamps.waitFor(v3, { signal: AbortSignal.timeout(5000) });
  await all.delete('p10', { ifVersion: v3 });

  const { result, context } = await session.call<{ updated: number }, { started: number }>(
    'discount', { percent: 10 }, { started: Date.now() }, { signal: AbortSignal.timeout(5000) });
  console.log(result.updated, context.started);

  const bindOptions: BindTableOptions<Product> = {
    container: document.body,
    render: (rec: RecordOf<Product>) => ({ cells: [rec.value.name, rec.value.price, null] }),
    update(el: Element, rec: RecordOf<Product>, row: RowState<Product>) {
      el.toggleAttribute('data-busy', row.saving || row.dirty.length > 0 || row.conflict !== null);
      console.log(rec.version);
    },
    sort: (a, b) => a.value.price - b.value.price,
    filter: (rec) => rec.value.price > 0,
    read: (control: Element) => (control as HTMLInputElement).value,
    validate(value: JSONValue, id: string) {
      if (value === null) throw new ViewsyncError('bad_request', `row ${id} is empty`, 400);
    },
    write(control: Element, value: JSONValue | undefined) {
      (control as HTMLInputElement).value = value == null ? '' : String(value);
    },
    onConflict(el: Element, conflict: Conflict<Product> | null, rec: RecordOf<Product> | null) {
      el.textContent = conflict ? `${conflict.deleted} ${conflict.fields.join()} ${conflict.theirs?.version}` : rec?.id ?? '';
    },
    onError: (error: ViewsyncError, id: string) => console.error(id, error.code),
    onSaved: (el: Element, saved: number) => el.setAttribute('data-version', String(saved)),
    async put(id: string, value: Product, { ifVersion }: { ifVersion: number }) {
      const { result } = await session.call<{ version: number }>('products.put', { id, value, ifVersion });
      return result.version;
    },
    keys: true,
    presence: { name: 'Ana' },
  };
  const binding: Binding<Product> = bindTable(lamps, bindOptions);

  // Who else is here: members, their records and states.
  const here: Presence = all.presence;
  const stopPresence = here.subscribe((change: PresenceChange) => console.log(change.type, change.member, change.count));
  await here.set({ name: 'Ana', editing: 'p1' }, { record: 'p1' });
  const others: PresenceMember[] = here.others();
  console.log(here.self, here.count, here.members.size, others.map((m) => m.member), here.on('p1')[0]?.record);
  await here.clear();
  stopPresence();
  await binding.save('p1');
  await binding.keepMine('p1');
  binding.takeTheirs('p1');
  binding.destroy();

  // Offline-first: the cache, the outbox and the sync status.
  const persist: PersistOptions = { version: 'v3', database: 'viewsync', principal: 'user-7' };
  const offline = connect({ persist });
  const stopSync = offline.on('sync', (st: SyncStatus) => console.log(st.state, st.pending));
  const stopOutbox = offline.on('outbox', (ev: OutboxEvent) => {
    const w: QueuedWrite = ev.write;
    console.log(ev.type, w.key, w.kind, w.collection, w.id, w.value, w.ops, w.ifs, w.name, w.arg, w.queuedAt,
      ev.type === 'sent' ? ev.version : ev.type === 'failed' ? ev.error.code : '');
  });
  const cachedView = offline.collection<Product>('products');
  cachedView.subscribe((c: Change<Product>) => {
    if (c.type === 'pending') { const p: PendingChange = c; console.log(p.changed); }
  });
  console.log(cachedView.cached, cachedView.record('p1')?.pending, offline.sync.state, offline.outbox.length);
  await offline.call('discount', { percent: 10 }, undefined, { queue: true });
  stopSync();
  stopOutbox();
  offline.close();

  stop();
  lamps.close();
  stopStatus();
  stopErrors();
  session.close();
}

main().catch((e: unknown) => {
  if (e instanceof ViewsyncError) console.error(e.code);
});
