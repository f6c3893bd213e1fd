// The framework bindings' logic, in Node: the snapshots of viewsync/live.js
// that viewsync/react, viewsync/vue and viewsync/svelte hand out, over a
// real session and a fake WebSocket server (testing/fakes.js): identity that
// changes only with the view, records sorted and reused, status and errors;
// the Svelte store contract; the Vue composable in an effect scope; the
// React hooks rendered on the server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, fakeFetch, fakeWS, json, open, tick, until } from '../testing/fakes.js';
import { liveStatus, liveView } from '../viewsync/live.js';
import { statusStore, toStore } from 'viewsync/svelte';
import { useView as vueUseView, useSession as vueUseSession } from 'viewsync/vue';
import { useView as reactUseView, useSession as reactUseSession } from 'viewsync/react';
import { effectScope } from 'vue';
import { createElement } from 'react';
import { renderToString } from 'react-dom/server';

const rec = (id, value, version) => ({ id, value, version });
const put = (id, value) => ({ op: 'put', id, value });
const del = (id) => ({ op: 'delete', id });

/** live opens a session over a fake WebSocket and the view p (with where), subscribed. */
async function live(t, where) {
  const WS = fakeWS();
  const s = open(t, { url: BASE, WebSocket: WS, fetch: fakeFetch(() => json({})), maxSilentAttempts: 2, backoff: { base: 1, cap: 2 } });
  const v = s.collection('p', where ? { where } : undefined);
  await until(() => WS.all[0]?.of('subscribe').length === 1, 'subscribe');
  return { s, v, WS, ws: WS.all[0] };
}

test('live view: a snapshot that changes identity only with the view; records sorted by id, unchanged ones reused', async (t) => {
  const { v, ws } = await live(t);
  const lv = liveView(v);
  assert.equal(liveView(v), lv, 'one live state per view');
  const s0 = lv.get();
  assert.deepEqual({ ...s0 }, { records: [], version: 0, synced: false, status: 'live', error: null });
  assert.ok(Object.isFrozen(s0) && Object.isFrozen(s0.records));
  assert.equal(lv.get(), s0, 'stable while nothing changes');

  const seen = [];
  const stop = lv.listen((snap) => seen.push(snap));
  assert.equal(seen.length, 0, 'listen is not called at once');
  ws.deliver({ type: 'reset', collection: 'p', epoch: 'E', version: 3, records: [rec('b', { n: 2 }, 2), rec('a', { n: 1 }, 1), rec('c', { n: 3 }, 3)] });
  assert.equal(seen.length, 1, 'one snapshot per change, at once');
  const s1 = lv.get();
  assert.equal(seen[0], s1);
  assert.deepEqual(s1.records.map((r) => r.id), ['a', 'b', 'c']);
  assert.deepEqual(s1.records[1], { id: 'b', value: { n: 2 }, version: 2 });
  assert.equal(s1.version, 3);
  assert.equal(s1.synced, true);
  assert.equal(lv.get(), s1);

  ws.deliver({ type: 'commit', collection: 'p', epoch: 'E', version: 4, ops: [put('b', { n: 20 })] });
  const s2 = lv.get();
  assert.notEqual(s2, s1);
  assert.notEqual(s2.records, s1.records);
  assert.equal(s2.records[0], s1.records[0], 'a did not change: the same object');
  assert.equal(s2.records[2], s1.records[2]);
  assert.deepEqual(s2.records[1], { id: 'b', value: { n: 20 }, version: 4 });

  ws.deliver({ type: 'commit', collection: 'p', epoch: 'E', version: 5, ops: [del('a'), put('0', 0)] });
  assert.deepEqual(lv.get().records.map((r) => r.id), ['0', 'b', 'c']);
  assert.equal(lv.get().records[1], s2.records[1]);
  assert.equal(seen.length, 3);

  stop();
  ws.deliver({ type: 'commit', collection: 'p', epoch: 'E', version: 6, ops: [put('d', 4)] });
  assert.equal(seen.length, 3, 'no calls once stopped');
  // Not followed, get still sees the view as it is, and keeps what did not change.
  const s3 = lv.get();
  assert.equal(s3.version, 6);
  assert.deepEqual(s3.records.map((r) => r.id), ['0', 'b', 'c', 'd']);
  assert.equal(s3.records[1], s2.records[1]);
  assert.equal(lv.get(), s3);
});

test('live view: a filtered view\'s version moving without a change (progress) makes a new snapshot', async (t) => {
  const { v, ws } = await live(t, { category: 'lamp' });
  const lv = liveView(v);
  const seen = [];
  const stop = lv.listen((snap) => seen.push(snap.version));
  t.after(stop);
  ws.deliver({ type: 'reset', collection: 'p', sub: 'v1', epoch: 'E', version: 2, records: [] });
  ws.deliver({ type: 'progress', collection: 'p', sub: 'v1', epoch: 'E', version: 7 });
  await until(() => seen.at(-1) === 7, 'the progress');
  assert.deepEqual(seen, [2, 7]);
  assert.equal(lv.get().records.length, 0);
});

test('live view: status follows the session; a refused filter is the view\'s error, not another view\'s', async (t) => {
  const WS = fakeWS();
  const s = open(t, { url: BASE, WebSocket: WS, fetch: fakeFetch(() => json({})) });
  const bad = s.collection('p', { where: { price: { $regex: 'x' } } });
  const good = s.collection('p', { where: { category: 'lamp' } });
  const lb = liveView(bad);
  const lg = liveView(good);
  assert.equal(lg.get().status, 'connecting');
  const seenBad = [];
  const seenGood = [];
  t.after(lb.listen((snap) => seenBad.push(snap)));
  t.after(lg.listen((snap) => seenGood.push(snap)));
  await until(() => WS.all[0]?.of('subscribe').length === 2, 'subscribes');
  assert.equal(lg.get().status, 'live');
  assert.equal(seenGood.at(-1).status, 'live');
  WS.all[0].deliver({ type: 'error', sub: 'v1', code: 'bad_request', message: 'where: unknown operator "$regex"' });
  await until(() => lb.get().error !== null, 'the error');
  assert.equal(lb.get().error.code, 'bad_request');
  assert.equal(seenBad.at(-1), lb.get());
  assert.equal(lg.get().error, null, 'another view\'s refused filter');
  s.close();
  assert.equal(lg.get().status, 'closed');
});

test('live view: the session\'s errors show until it is live again', async (t) => {
  const WS = fakeWS({ fail: true });
  const s = open(t, {
    url: BASE, WebSocket: WS, transport: 'ws', maxSilentAttempts: 2, backoff: { base: 1, cap: 2 },
    fetch: fakeFetch(() => { throw new TypeError('fetch failed'); }),
  });
  const v = s.collection('p');
  const lv = liveView(v);
  const seen = [];
  t.after(lv.listen((snap) => seen.push(snap)));
  await until(() => lv.get().error?.code === 'unreachable', 'unreachable');
  assert.ok(seen.some((snap) => snap.status === 'offline'));
  WS.fail = false;
  await until(() => lv.get().status === 'live', 'live');
  assert.equal(lv.get().error, null, 'cleared once live');
  const n = WS.all.length;
  WS.all[n - 1].deliver({ type: 'reset', collection: 'p', epoch: 'E', version: 1, records: [rec('a', 1, 1)] });
  assert.equal(lv.get().synced, true);
  assert.equal(lv.get().error, null, 'the unreachable that rejected ready is over once synced');
});

test('live status: the same object until the status changes', async (t) => {
  const { s } = await live(t);
  const ls = liveStatus(s);
  const a = ls.get();
  assert.deepEqual({ ...a }, { state: 'live', transport: 'ws' });
  assert.equal(ls.get(), a);
  const seen = [];
  const stop = ls.listen((st) => seen.push(st.state));
  s.close();
  assert.deepEqual(seen, ['closed']);
  stop();
  assert.equal(ls.get().state, 'closed');
});

test('svelte: toStore follows the store contract; the View\'s own subscribe keeps its meaning', async (t) => {
  const { v, ws } = await live(t);
  const store = toStore(v);
  assert.equal(toStore(v), store, 'one store per view');
  const changes = [];
  t.after(v.subscribe((c) => changes.push(c.type)));
  assert.deepEqual(changes, [], 'View.subscribe is not called at once');

  const a = [];
  const stopA = store.subscribe((snap) => a.push(snap));
  assert.equal(a.length, 1, 'called at once, synchronously');
  assert.equal(a[0].synced, false);
  assert.equal(typeof stopA, 'function');
  const b = [];
  const stopB = store.subscribe((snap) => b.push(snap));
  assert.equal(b[0], a[0], 'both get the same snapshot');

  ws.deliver({ type: 'reset', collection: 'p', epoch: 'E', version: 2, records: [rec('x', 'X', 2)] });
  assert.deepEqual(changes, ['reset']);
  assert.equal(a.length, 2);
  assert.equal(a[1], b[1]);
  assert.deepEqual(a[1].records, [{ id: 'x', value: 'X', version: 2 }]);

  stopA();
  stopA(); // twice is harmless
  ws.deliver({ type: 'commit', collection: 'p', epoch: 'E', version: 3, ops: [put('y', 'Y')] });
  assert.equal(a.length, 2, 'no more calls once unsubscribed');
  assert.equal(b.length, 3);
  assert.deepEqual(b[2].records.map((r) => r.id), ['x', 'y']);
  stopB();

  // Subscribed anew: at once with the view as it is now.
  const c = [];
  store.subscribe((snap) => c.push(snap))();
  assert.equal(c.length, 1);
  assert.equal(c[0], b[2]);

  const st = statusStore(v.session);
  const states = [];
  const stopS = st.subscribe((x) => states.push(x.state));
  assert.deepEqual(states, ['live']);
  v.session.close();
  assert.deepEqual(states, ['live', 'closed']);
  stopS();
  assert.throws(() => toStore(/** @type {any} */ ({})), TypeError);
});

test('vue: useView\'s shallow refs follow the view until the scope is disposed', async (t) => {
  const { s, v, ws } = await live(t);
  const scope = effectScope();
  const refs = scope.run(() => vueUseView(v));
  const status = scope.run(() => vueUseSession(s));
  assert.equal(refs.synced.value, false);
  assert.equal(refs.status.value, 'live');
  assert.equal(status.value.state, 'live');
  ws.deliver({ type: 'reset', collection: 'p', epoch: 'E', version: 2, records: [rec('b', 2, 2), rec('a', 1, 1)] });
  assert.equal(refs.synced.value, true);
  assert.equal(refs.version.value, 2);
  assert.deepEqual(refs.records.value.map((r) => r.id), ['a', 'b']);
  assert.equal(refs.snapshot.value, liveView(v).get());
  const before = refs.records.value;
  scope.stop();
  ws.deliver({ type: 'commit', collection: 'p', epoch: 'E', version: 3, ops: [put('c', 3)] });
  assert.equal(refs.records.value, before, 'let go with the scope');
  assert.equal(refs.version.value, 2);
  s.close();
  assert.equal(status.value.state, 'live', 'useSession let go too');

  // Outside a scope: stop() by hand.
  const { v: w, ws: ws2 } = await live(t);
  const r2 = vueUseView(w);
  ws2.deliver({ type: 'reset', collection: 'p', epoch: 'E', version: 1, records: [] });
  assert.equal(r2.version.value, 1);
  r2.stop();
  ws2.deliver({ type: 'commit', collection: 'p', epoch: 'E', version: 2, ops: [put('c', 3)] });
  assert.equal(r2.version.value, 1);
});

test('react: useView and useSession render (server rendering: the same snapshot)', async (t) => {
  const { s, v, ws } = await live(t);
  ws.deliver({ type: 'reset', collection: 'p', epoch: 'E', version: 2, records: [rec('b', 'B', 2), rec('a', 'A', 1)] });
  function List() {
    const { records, version, status } = reactUseView(v);
    const { transport } = reactUseSession(s);
    return createElement('ul', { 'data-version': version, 'data-status': `${status}/${transport}` },
      records.map((r) => createElement('li', { key: r.id }, String(r.value))));
  }
  const html = renderToString(createElement(List));
  assert.equal(html, '<ul data-version="2" data-status="live/ws"><li>A</li><li>B</li></ul>');
  await tick(1);
});
