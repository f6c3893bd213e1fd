// Compile-time only: `tsc -p client` (run by scripts/test.sh) checks here
// that the modules of viewsync.js provide what viewsync.d.ts declares. The
// modules' own JSDoc types are taken from viewsync.d.ts too. Nothing runs
// this file and it is not published.
import type * as D from './viewsync.js'; // resolves to viewsync.d.ts
import { bindTable } from './viewsync/bind.js';
import { ViewsyncError } from './viewsync/errors.js';
import { connect, Session } from './viewsync/session.js';
import { View } from './viewsync/view.js';

type Item = { name: string; price: number };

// Exports: each can be used wherever its declaration can.
connect satisfies typeof D.connect;
bindTable satisfies typeof D.bindTable;
ViewsyncError satisfies typeof D.ViewsyncError;

// Instances of the classes whose constructors are not public.
declare const session: Session;
declare const view: View;
declare const items: View<Item>;
session satisfies D.Session;
view satisfies D.View;
items satisfies D.View<Item>;
new ViewsyncError('network', 'down') satisfies D.ViewsyncError;

// Filtered views: where is typed by D.Where, and the view is a View.
const lamps = session.collection<Item>('products', {
  where: { category: 'lamp', price: { $lt: 50, $gte: 10 }, $or: [{ 'dims.w': { $gt: 40 } }, { $id: { $in: ['p1', 'p2'] } }] },
});
lamps satisfies D.View<Item>;
lamps.where satisfies Readonly<D.Where> | null;
({ where: { tags: { $exists: true }, $and: [{ name: { $ne: null } }] } }) satisfies D.CollectionOptions;
({ where: null }) satisfies D.CollectionOptions;

// Presence: the view's presence is the declared class.
items.presence satisfies D.Presence;
items.presence.set({ name: 'Ana', editing: 'p7' }, { record: 'p7' }) satisfies Promise<void>;
items.presence.subscribe((c: D.PresenceChange) => c.count) satisfies () => void;
items.presence.on('p7') satisfies D.PresenceMember[];
({ container: document.body, render: () => ({ cells: [] }), presence: { name: 'Ana' } }) satisfies D.BindTableOptions<Item>;

// Offline-first: persist, the sync status, the outbox and pending records.
connect({ persist: true }) satisfies D.Session;
connect({ persist: { version: 'v3', database: 'app', principal: 'u1' } }).sync satisfies D.SyncStatus;
session.sync.state satisfies D.SyncStatus['state'];
session.outbox satisfies D.QueuedWrite[];
session.on('sync', (s: D.SyncStatus) => s.pending) satisfies () => void;
session.on('outbox', (e: D.OutboxEvent) => e.write.key) satisfies () => void;
session.call('discount', null, undefined, { queue: true }) satisfies Promise<{ result: D.JSONValue; context: undefined }>;
view.cached satisfies boolean;
items.record('p1')?.pending satisfies true | undefined;
({ type: 'pending', epoch: 'e', version: 1, added: [], updated: [], removed: [], changed: [] }) satisfies D.PendingChange;
