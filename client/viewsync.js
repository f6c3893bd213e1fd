// viewsync.js — the browser client of viewsync (HTTP API v1).
//
// ES modules with no dependencies and no build step: this file is the entry,
// its parts are the modules of viewsync/ beside it, imported relatively (a
// viewsync server serves them all).
//
//   import { connect, bindTable } from '/viewsync.js';
//   const session = connect({ token });
//   const products = session.collection('products');
//   products.subscribe((ev) => console.log(ev.type, ev.version, ev.changed));
//
// The flow: one Session (session.js) owns one link to the server — a
// WebSocket carrying every subscription (ws.js), or per-collection streams
// (stream.js: sse.js, ndjson.js), long-polls (longpoll.js) or polls
// (poll.js), all but the first over http.js — and one View per
// collection (view.js). Each message from the link is applied to its View in
// version order, exactly once (state.js); a gap or another epoch makes the
// link resync from the view's cursor (EPOCH:VERSION). bindTable (bind.js)
// patches a view into the DOM. Types: viewsync.d.ts.

export { ViewsyncError } from './viewsync/errors.js';
export { connect, Session } from './viewsync/session.js';
export { View } from './viewsync/view.js';
export { bindTable } from './viewsync/bind.js';
export { Presence } from './viewsync/presence.js';
