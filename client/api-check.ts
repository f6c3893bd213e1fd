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
