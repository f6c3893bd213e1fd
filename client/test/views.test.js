// Filtered views ("live queries"): session.collection(name, {where}). The
// apply rules of a view's commits (after) and progress, the dedupe of equal
// filters, and each transport against a fake server as in session.test.js
// and ndjson.test.js: sub ids on one WebSocket, where= on the HTTP URLs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ViewsyncError } from '../viewsync.js';
import { BASE, fakeFetch, fakeWS, json, open, tick, until } from '../testing/fakes.js';
import { canonicalJSON } from '../viewsync/json.js';
import { applyToState, changesMessages, newState } from '../viewsync/state.js';

const enc = new TextEncoder();

/** within fails instead of hanging when p does not settle in ms. */
function within(p, what, ms = 3000) {
  let timer;
  const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms); });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** stream answers a streamed body the test writes to: send(text), end(). */
function stream(type, init) {
  let ctl;
  const body = new ReadableStream({ start(c) { ctl = c; } });
  const st = {
    headers: init.headers, signal: init.signal,
    send: (text) => ctl.enqueue(enc.encode(text)),
    line: (obj) => ctl.enqueue(enc.encode(`${JSON.stringify(obj)}\n`)),
    end: () => ctl.close(),
  };
  return { st, res: new Response(body, { headers: { 'Content-Type': type } }) };
}

const LAMPS = { category: 'lamp' };
const CHEAP = { price: { $lt: 50 } };
const rec = (id, value, version) => ({ id, value, version });
const put = (id, value) => ({ op: 'put', id, value });
const del = (id) => ({ op: 'delete', id });

// --- the apply rules ---

test('apply: a commit with after applies when after ≤ version < its version; at or below the version it is stale; else a gap', () => {
  const st = newState();
  applyToState(st, { type: 'reset', epoch: 'E', version: 3, records: [] });
  // No commit in (3, 7) concerns the view: 7 follows 3, 4, 5 or 6.
  let r = applyToState(st, { type: 'commit', epoch: 'E', version: 7, after: 3, ops: [put('a', 1)] });
  assert.equal(r.status, 'applied');
  assert.deepEqual(r.event.added, ['a']);
  assert.equal(st.version, 7);
  assert.equal(st.versions.get('a'), 7);
  // At or below the version: already applied.
  assert.equal(applyToState(st, { type: 'commit', epoch: 'E', version: 7, after: 3, ops: [put('a', 2)] }).status, 'stale');
  assert.equal(applyToState(st, { type: 'commit', epoch: 'E', version: 5, after: 1, ops: [put('a', 2)] }).status, 'stale');
  // after below the version (the view moved by a progress meanwhile) still applies.
  applyToState(st, { type: 'progress', epoch: 'E', version: 9 });
  assert.equal(applyToState(st, { type: 'commit', epoch: 'E', version: 12, after: 8, ops: [del('a')] }).status, 'applied');
  assert.equal(st.records.has('a'), false);
  // after past the version: commits in between concern the view and are missing.
  assert.equal(applyToState(st, { type: 'commit', epoch: 'E', version: 20, after: 13, ops: [put('b', 1)] }).status, 'gap');
  assert.equal(st.version, 12);
  assert.equal(st.records.has('b'), false);
  // after = version exactly: the next commit, like one without after.
  assert.equal(applyToState(st, { type: 'commit', epoch: 'E', version: 20, after: 12, ops: [put('b', 1)] }).status, 'applied');
  // Without after, today's rule: version + 1 only.
  assert.equal(applyToState(st, { type: 'commit', epoch: 'E', version: 22, ops: [] }).status, 'gap');
  assert.equal(applyToState(st, { type: 'commit', epoch: 'E', version: 21, ops: [] }).status, 'applied');
  // Another epoch, or nothing synced yet: never applied.
  assert.equal(applyToState(st, { type: 'commit', epoch: 'F', version: 30, after: 21, ops: [] }).status, 'epoch');
  assert.equal(applyToState(newState(), { type: 'commit', epoch: 'E', version: 2, after: 0, ops: [] }).status, 'gap');
});

test('apply: a progress moves the version without a change; stale at or below it; another epoch resyncs; ignored before the first sync', () => {
  const st = newState();
  assert.equal(applyToState(st, { type: 'progress', epoch: 'E', version: 4 }).status, 'stale', 'before the first sync');
  assert.equal(st.version, 0);
  applyToState(st, { type: 'reset', epoch: 'E', version: 3, records: [rec('a', 1, 2)] });
  const r = applyToState(st, { type: 'progress', epoch: 'E', version: 8 });
  assert.deepEqual(r, { status: 'applied', event: null });
  assert.equal(st.version, 8);
  assert.deepEqual([...st.records], [['a', 1]], 'records untouched');
  assert.equal(applyToState(st, { type: 'progress', epoch: 'E', version: 8 }).status, 'stale');
  assert.equal(applyToState(st, { type: 'progress', epoch: 'E', version: 5 }).status, 'stale');
  assert.equal(applyToState(st, { type: 'progress', epoch: 'F', version: 99 }).status, 'epoch');
  assert.equal(st.version, 8);
  assert.equal(applyToState(st, { type: 'progress', version: 9 }).status, 'applied', 'no epoch: judged by its version');
});

test('changesMessages: commits keep after; a filtered view\'s page ends with a progress to the answer\'s version', () => {
  const body = { epoch: 'E', version: 10, commits: [{ version: 4, after: 2, at: 't', ops: [] }, { version: 6, ops: [] }] };
  assert.deepEqual(changesMessages(body), [
    { type: 'commit', epoch: 'E', version: 4, after: 2, at: 't', ops: [] },
    { type: 'commit', epoch: 'E', version: 6, at: undefined, ops: [] },
  ]);
  assert.deepEqual(changesMessages(body, { filtered: true }).at(-1), { type: 'progress', epoch: 'E', version: 10 });
  assert.deepEqual(changesMessages({ epoch: 'E', version: 10, commits: [] }, { filtered: true }), [{ type: 'progress', epoch: 'E', version: 10 }]);
  // Catch-ups and resets are as for the whole collection.
  assert.equal(changesMessages({ epoch: 'E', version: 3, compacted: true, records: [], deleted: [] }, { filtered: true }).length, 1);
  assert.equal(changesMessages({ epoch: 'E', version: 3, reset: true, records: [] }, { filtered: true })[0].type, 'reset');
});

test('canonicalJSON: compact, keys sorted at every depth, arrays in order', () => {
  assert.equal(canonicalJSON({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } }), '{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}');
  assert.equal(canonicalJSON({ $or: [{ b: 1 }, { a: 'x"y' }] }), '{"$or":[{"b":1},{"a":"x\\"y"}]}');
  assert.equal(canonicalJSON('s'), '"s"');
});

// --- the API ---

test('collection: equal filters give the same view, other filters other views; where is a frozen copy', async (t) => {
  const WS = fakeWS();
  const s = open(t, { url: BASE, WebSocket: WS, fetch: fakeFetch(() => json({})) });
  const all = s.collection('products');
  const where = { price: { $lt: 50, $gte: 10 }, category: 'lamp' };
  const a = s.collection('products', { where });
  const b = s.collection('products', { where: { category: 'lamp', price: { $gte: 10, $lt: 50 } } });
  assert.equal(a, b, 'the same filter with its keys in another order');
  assert.notEqual(a, all);
  assert.notEqual(s.collection('products', { where: { category: 'desk' } }), a);
  assert.notEqual(s.collection('orders', { where }), a, 'another collection');
  assert.equal(s.collection('products'), all);
  assert.equal(s.collection('products', { where: null }), all);
  assert.equal(s.collection('products', { where: {} }), all, 'an empty filter is the whole collection');
  assert.equal(all.where, null);
  assert.deepEqual(a.where, where);
  assert.notEqual(a.where, where, 'a copy');
  assert.ok(Object.isFrozen(a.where) && Object.isFrozen(a.where.price));
  where.category = 'desk';
  assert.equal(a.where.category, 'lamp', 'the caller changing its object changes nothing');
  assert.equal(a.name, 'products');
  for (const bad of [[1], 'x', 3, true]) {
    assert.throws(() => s.collection('products', { where: bad }), (e) => e instanceof ViewsyncError && e.code === 'bad_request', JSON.stringify(bad));
  }
  const cyclic = {};
  cyclic.self = cyclic;
  assert.throws(() => s.collection('products', { where: cyclic }), { code: 'bad_request' });
  // One subscription per view on the socket, equal filters sharing theirs.
  await until(() => WS.all[0]?.of('subscribe').length === 4, 'subscribes');
  await tick();
  assert.deepEqual(WS.all[0].of('subscribe').map((m) => [m.collection, m.sub ?? null]), [['products', null], ['products', 'v1'], ['products', 'v2'], ['orders', 'v3']]);
  s.close();
  assert.throws(() => s.collection('products', { where: LAMPS }), { code: 'closed' });
});

// --- WebSocket ---

test('ws: two filtered views of one collection on one socket: subscribe with sub and where, messages routed by sub, acks and unsubscribe name it', async (t) => {
  const WS = fakeWS();
  const s = open(t, { url: BASE, WebSocket: WS, fetch: fakeFetch(() => json({})) });
  const all = s.collection('p');
  const lamps = s.collection('p', { where: LAMPS });
  const cheap = s.collection('p', { where: CHEAP });
  await until(() => WS.all[0]?.of('subscribe').length === 3, 'subscribes');
  const ws = WS.all[0];
  assert.equal(WS.all.length, 1, 'one socket');
  assert.deepEqual(ws.of('subscribe'), [
    { type: 'subscribe', collection: 'p' }, // the whole collection: today's message
    { type: 'subscribe', collection: 'p', sub: 'v1', where: LAMPS },
    { type: 'subscribe', collection: 'p', sub: 'v2', where: CHEAP },
  ]);
  // The filter travels as compact JSON with sorted keys.
  assert.equal(ws.raw[1], '{"type":"subscribe","collection":"p","sub":"v1","where":{"category":"lamp"}}');

  const seen = { all: [], lamps: [], cheap: [] };
  all.subscribe((e) => seen.all.push(`${e.type}@${e.version}`));
  lamps.subscribe((e) => seen.lamps.push(`${e.type}@${e.version}`));
  cheap.subscribe((e) => seen.cheap.push(`${e.type}@${e.version}`));
  const lamp = { category: 'lamp', price: 80 };
  const desk = { category: 'desk', price: 20 };
  ws.deliver({ type: 'reset', collection: 'p', epoch: 'E', version: 2, records: [rec('l', lamp, 1), rec('d', desk, 2)] });
  ws.deliver({ type: 'reset', collection: 'p', sub: 'v1', epoch: 'E', version: 2, records: [rec('l', lamp, 1)] });
  ws.deliver({ type: 'reset', collection: 'p', sub: 'v2', epoch: 'E', version: 2, records: [rec('d', desk, 2)] });
  assert.deepEqual([...all.records.keys()], ['l', 'd']);
  assert.deepEqual([...lamps.records.keys()], ['l']);
  assert.deepEqual([...cheap.records.keys()], ['d']);
  // Commit 3 writes a desk: the lamps view does not get it, nor progress yet.
  ws.deliver({ type: 'commit', collection: 'p', epoch: 'E', version: 3, ops: [put('d2', desk)] });
  ws.deliver({ type: 'commit', collection: 'p', sub: 'v2', epoch: 'E', version: 3, after: 2, ops: [put('d2', desk)] });
  // Commit 4 makes the lamp cheap: it enters the cheap view.
  const cheapLamp = { category: 'lamp', price: 30 };
  ws.deliver({ type: 'commit', collection: 'p', epoch: 'E', version: 4, ops: [put('l', cheapLamp)] });
  ws.deliver({ type: 'commit', collection: 'p', sub: 'v1', epoch: 'E', version: 4, after: 2, ops: [put('l', cheapLamp)] });
  ws.deliver({ type: 'commit', collection: 'p', sub: 'v2', epoch: 'E', version: 4, after: 3, ops: [put('l', cheapLamp)] });
  // A sub nobody holds, or a sub of another collection: ignored.
  ws.deliver({ type: 'commit', collection: 'p', sub: 'v9', epoch: 'E', version: 5, after: 4, ops: [put('x', 1)] });
  ws.deliver({ type: 'commit', collection: 'q', sub: 'v1', epoch: 'E', version: 5, after: 4, ops: [put('x', 1)] });
  assert.deepEqual(seen, {
    all: ['reset@2', 'commit@3', 'commit@4'],
    lamps: ['reset@2', 'commit@4'],
    cheap: ['reset@2', 'commit@3', 'commit@4'],
  });
  assert.deepEqual([lamps.version, cheap.version, all.version], [4, 4, 4]);
  assert.deepEqual(Object.fromEntries(cheap.records), { d: desk, d2: desk, l: cheapLamp });
  assert.deepEqual(Object.fromEntries(lamps.records), { l: cheapLamp });
  assert.equal(lamps.record('l').version, 4);

  // Acks name the subscription.
  await until(() => ws.of('ack').length >= 3, 'acks');
  await tick(300);
  const acks = ws.of('ack');
  for (const [sub, view] of [[undefined, all], ['v1', lamps], ['v2', cheap]]) {
    const last = acks.filter((a) => a.sub === sub).at(-1);
    assert.deepEqual(last, sub ? { type: 'ack', collection: 'p', sub, version: view.version } : { type: 'ack', collection: 'p', version: view.version });
  }

  // Closing a filtered view unsubscribes it alone.
  lamps.close();
  assert.deepEqual(ws.of('unsubscribe'), [{ type: 'unsubscribe', collection: 'p', sub: 'v1' }]);
  ws.deliver({ type: 'commit', collection: 'p', sub: 'v1', epoch: 'E', version: 5, after: 4, ops: [put('z', 1)] });
  assert.equal(lamps.version, 4, 'a closed view gets nothing');
  // A new view with the same filter is a new subscription, with a new id.
  const again = s.collection('p', { where: LAMPS });
  assert.notEqual(again, lamps);
  await tick(); // subscribes go at the end of the task
  assert.deepEqual(ws.of('subscribe').at(-1), { type: 'subscribe', collection: 'p', sub: 'v3', where: LAMPS });
  s.close();
});

test('ws: a filtered view resubscribes from its cursor on a gap; stale commits are ignored', async (t) => {
  const WS = fakeWS();
  const s = open(t, { url: BASE, WebSocket: WS, fetch: fakeFetch(() => json({})) });
  const v = s.collection('p', { where: LAMPS });
  await until(() => WS.all[0]?.of('subscribe').length === 1, 'subscribe');
  const ws = WS.all[0];
  ws.deliver({ type: 'reset', collection: 'p', sub: 'v1', epoch: 'E', version: 4, records: [] });
  ws.deliver({ type: 'commit', collection: 'p', sub: 'v1', epoch: 'E', version: 9, after: 6, ops: [put('a', LAMPS)] });
  assert.equal(v.version, 4, 'gap: not applied');
  assert.equal(v.records.size, 0);
  await until(() => WS.all[1]?.of('subscribe').length === 1, 'resubscribe on a new socket');
  assert.ok(ws.closed);
  assert.deepEqual(WS.all[1].of('subscribe')[0], { type: 'subscribe', collection: 'p', sub: 'v1', where: LAMPS, after: 4, epoch: 'E' });
  const ws2 = WS.all[1];
  ws2.deliver({ type: 'commit', collection: 'p', sub: 'v1', epoch: 'E', version: 6, after: 4, ops: [put('a', LAMPS)] });
  ws2.deliver({ type: 'commit', collection: 'p', sub: 'v1', epoch: 'E', version: 9, after: 6, ops: [put('b', LAMPS)] });
  ws2.deliver({ type: 'commit', collection: 'p', sub: 'v1', epoch: 'E', version: 9, after: 6, ops: [del('b')] }); // again: stale
  ws2.deliver({ type: 'commit', collection: 'p', sub: 'v1', epoch: 'E', version: 7, after: 4, ops: [del('a')] }); // older: stale
  assert.equal(v.version, 9);
  assert.deepEqual([...v.records.keys()], ['a', 'b']);
  await tick();
  assert.equal(WS.all.length, 2, 'stale commits do not resync');
  s.close();
});

test('ws: a progress moves the version and resolves waitFor without a change event; another epoch resyncs', async (t) => {
  const WS = fakeWS();
  const s = open(t, { url: BASE, WebSocket: WS, fetch: fakeFetch(() => json({})) });
  const v = s.collection('p', { where: LAMPS });
  await until(() => WS.all[0]?.of('subscribe').length === 1, 'subscribe');
  const ws = WS.all[0];
  ws.deliver({ type: 'reset', collection: 'p', sub: 'v1', epoch: 'E', version: 2, records: [rec('a', LAMPS, 2)] });
  const events = [];
  v.subscribe((e) => events.push(e));
  let reached = 0;
  const wait = v.waitFor(6).then((n) => { reached = n; });
  ws.deliver({ type: 'progress', collection: 'p', sub: 'v1', epoch: 'E', version: 5 });
  await tick();
  assert.equal(v.version, 5);
  assert.equal(reached, 0, 'not yet at 6');
  ws.deliver({ type: 'progress', collection: 'p', sub: 'v1', epoch: 'E', version: 7 });
  await within(wait, 'waitFor(6)');
  assert.equal(reached, 7);
  ws.deliver({ type: 'progress', collection: 'p', sub: 'v1', epoch: 'E', version: 6 }); // behind: ignored
  assert.equal(v.version, 7);
  assert.deepEqual(events, [], 'no change event for a progress');
  assert.deepEqual(Object.fromEntries(v.records), { a: LAMPS });
  // The next commit follows the progress.
  ws.deliver({ type: 'commit', collection: 'p', sub: 'v1', epoch: 'E', version: 8, after: 7, ops: [del('a')] });
  assert.equal(v.version, 8);
  assert.deepEqual(events.map((e) => [e.type, e.removed]), [['commit', ['a']]]);
  // Acks follow progress too.
  await until(() => ws.of('ack').some((a) => a.version === 8), 'ack of 8');
  assert.equal(WS.all.length, 1);
  // A progress of another epoch: resync from the cursor.
  ws.deliver({ type: 'progress', collection: 'p', sub: 'v1', epoch: 'F', version: 1 });
  assert.equal(v.version, 8);
  await until(() => WS.all[1]?.of('subscribe').length === 1, 'resubscribe');
  assert.deepEqual(WS.all[1].of('subscribe')[0], { type: 'subscribe', collection: 'p', sub: 'v1', where: LAMPS, after: 8, epoch: 'E' });
  s.close();
});

test('ws: a subscribe refused with bad_request ends that view alone', async (t) => {
  const WS = fakeWS();
  const s = open(t, { url: BASE, WebSocket: WS, fetch: fakeFetch(() => json({})) });
  const errors = [];
  s.on('error', (e) => errors.push(e));
  const bad = s.collection('p', { where: { price: { $regex: 'x' } } });
  const good = s.collection('p', { where: LAMPS });
  await until(() => WS.all[0]?.of('subscribe').length === 2, 'subscribes');
  const ws = WS.all[0];
  // The error names the sub, not the collection.
  ws.deliver({ type: 'error', sub: 'v1', code: 'bad_request', message: 'where: unknown operator "$regex"' });
  await assert.rejects(bad.ready, (e) => e instanceof ViewsyncError && e.code === 'bad_request' && e.status === 400 && /\$regex/.test(e.message));
  await assert.rejects(bad.waitFor(1), { code: 'closed' });
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, 'bad_request');
  assert.deepEqual(ws.of('unsubscribe'), [], 'nothing to unsubscribe');
  // The other view goes on, on the same socket; the failed one is let go.
  ws.deliver({ type: 'reset', collection: 'p', sub: 'v2', epoch: 'E', version: 3, records: [] });
  assert.equal(await within(good.ready, 'ready'), 3);
  // An error naming a live view's sub that does not answer its subscribe
  // (an ack the server refuses) is reported, and ends nothing.
  ws.deliver({ type: 'error', collection: 'p', sub: 'v2', code: 'bad_request', message: 'ack of version 9 of "p" (subscription "v2"), ahead of the version 3 sent' });
  assert.equal(errors.length, 2);
  ws.deliver({ type: 'commit', collection: 'p', sub: 'v2', epoch: 'E', version: 4, after: 3, ops: [put('a', LAMPS)] });
  assert.equal(good.version, 4);
  assert.equal(s.collection('p', { where: LAMPS }), good);
  assert.equal(WS.all.length, 1);
  const retry = s.collection('p', { where: { price: { $regex: 'x' } } });
  assert.notEqual(retry, bad, 'asking again makes a new view');
  await tick(); // subscribes go at the end of the task
  assert.equal(ws.of('subscribe').at(-1).sub, 'v3');
  s.close();
});

test('ws: writes through a filtered view go to the collection; waitFor of their version resolves by a progress', async (t) => {
  const WS = fakeWS();
  const s = open(t, { url: BASE, WebSocket: WS, fetch: fakeFetch(() => json({})) });
  const v = s.collection('p', { where: LAMPS });
  await until(() => s.status.state === 'live', 'live');
  const ws = WS.all[0];
  ws.deliver({ type: 'reset', collection: 'p', sub: 'v1', epoch: 'E', version: 1, records: [rec('a', LAMPS, 1)] });
  const p = v.put('a', { category: 'desk' }, { ifVersion: 1 });
  await until(() => ws.of('commit').length === 1, 'commit');
  const m = ws.of('commit')[0];
  assert.deepEqual({ ...m, id: undefined }, { type: 'commit', id: undefined, collection: 'p', ops: [put('a', { category: 'desk' })], if: { a: 1 } });
  ws.deliver({ type: 'result', id: m.id, result: { version: 2 }, versions: { p: 2 } });
  assert.equal(await p, 2);
  // The record left the view: a delete.
  ws.deliver({ type: 'commit', collection: 'p', sub: 'v1', epoch: 'E', version: 2, after: 1, ops: [del('a')] });
  assert.equal(await within(v.waitFor(2), 'waitFor(2)'), 2);
  assert.equal(v.records.size, 0);
  // A write outside the view: the view reaches its version by a progress.
  const q = v.put('b', { category: 'desk' });
  await until(() => ws.of('commit').length === 2, 'second commit');
  ws.deliver({ type: 'result', id: ws.of('commit')[1].id, result: { version: 3 }, versions: { p: 3 } });
  const w = await within(q, 'the put');
  let done = false;
  const waited = v.waitFor(w).then(() => { done = true; });
  await tick();
  assert.equal(done, false);
  ws.deliver({ type: 'progress', collection: 'p', sub: 'v1', epoch: 'E', version: 3 });
  await within(waited, 'waitFor of the write');
  assert.equal(v.records.size, 0);
  s.close();
});

test('ws: a call waits for every view of its collection, filtered ones too, without opening another', async (t) => {
  const WS = fakeWS();
  const s = open(t, { url: BASE, WebSocket: WS, fetch: fakeFetch(() => json({})) });
  const lamps = s.collection('p', { where: LAMPS });
  const cheap = s.collection('p', { where: CHEAP });
  await until(() => WS.all[0]?.of('subscribe').length === 2, 'subscribes');
  const ws = WS.all[0];
  ws.deliver({ type: 'reset', collection: 'p', sub: 'v1', epoch: 'E', version: 1, records: [] });
  ws.deliver({ type: 'reset', collection: 'p', sub: 'v2', epoch: 'E', version: 1, records: [] });
  let done = false;
  const call = s.call('discount', { percent: 10 }).then((r) => { done = true; return r; });
  await until(() => ws.of('call').length === 1, 'call');
  ws.deliver({ type: 'result', id: ws.of('call')[0].id, result: 'ok', versions: { p: 2 } });
  await tick();
  assert.equal(ws.of('subscribe').length, 2, 'no view of the whole collection opened for the wait');
  ws.deliver({ type: 'commit', collection: 'p', sub: 'v2', epoch: 'E', version: 2, after: 1, ops: [put('x', { price: 9 })] });
  await tick();
  assert.equal(done, false, 'the lamps view is not at 2 yet');
  ws.deliver({ type: 'progress', collection: 'p', sub: 'v1', epoch: 'E', version: 2 });
  assert.deepEqual(await within(call, 'the call'), { result: 'ok', context: undefined });
  assert.deepEqual([lamps.version, cheap.version], [2, 2]);
  s.close();
});

test('ws: records move in and out of a filtered view as puts and deletes', async (t) => {
  const WS = fakeWS();
  const s = open(t, { url: BASE, WebSocket: WS, fetch: fakeFetch(() => json({})) });
  const v = s.collection('p', { where: CHEAP });
  await until(() => WS.all[0]?.of('subscribe').length === 1, 'subscribe');
  const ws = WS.all[0];
  const changes = [];
  v.subscribe((e) => changes.push({ type: e.type, added: e.added, updated: e.updated, removed: e.removed }));
  ws.deliver({ type: 'reset', collection: 'p', sub: 'v1', epoch: 'E', version: 5, records: [rec('a', { price: 10 }, 3)] });
  // b moves in (a put with its whole value), a moves out (a delete), then a
  // catch-up brings c in and drops b.
  ws.deliver({ type: 'commit', collection: 'p', sub: 'v1', epoch: 'E', version: 7, after: 5, ops: [put('b', { price: 20, name: 'B' })] });
  ws.deliver({ type: 'commit', collection: 'p', sub: 'v1', epoch: 'E', version: 8, ops: [del('a')] });
  ws.deliver({ type: 'commit', collection: 'p', sub: 'v1', epoch: 'E', version: 10, after: 8, ops: [put('b', { price: 25, name: 'B' })] });
  ws.deliver({ type: 'catchup', collection: 'p', sub: 'v1', epoch: 'E', version: 20, compacted: true, records: [rec('c', { price: 1 }, 15)], deleted: ['b'] });
  assert.deepEqual(changes, [
    { type: 'reset', added: ['a'], updated: [], removed: [] },
    { type: 'commit', added: ['b'], updated: [], removed: [] },
    { type: 'commit', added: [], updated: [], removed: ['a'] },
    { type: 'commit', added: [], updated: ['b'], removed: [] },
    { type: 'catchup', added: ['c'], updated: [], removed: ['b'] },
  ]);
  assert.deepEqual(Object.fromEntries(v.records), { c: { price: 1 } });
  assert.equal(v.version, 20);
  s.close();
});

// --- HTTP transports: where= on every read ---

test('sse: where= on the events URL; commits with after and progress events apply; the cursor resumes', async (t) => {
  const streams = [];
  const fetch = fakeFetch((method, url, init) => {
    if (url.pathname.endsWith('/events')) {
      const { st, res } = stream('text/event-stream', init);
      streams.push({ ...st, url });
      return res;
    }
    return json({ error: { code: 'not_found', message: 'x' } }, 404);
  });
  const s = open(t, { url: BASE, fetch, transport: 'sse', backoff: { base: 1, cap: 5 } });
  const v = s.collection('p', { where: { price: { $lt: 50 }, category: { $in: ['lamp', 'desk'] } } });
  const all = s.collection('p');
  await until(() => streams.length === 2, 'two streams');
  const st = streams.find((x) => x.url.search !== '');
  const canonical = '{"category":{"$in":["lamp","desk"]},"price":{"$lt":50}}';
  assert.equal(st.url.search, `?where=${encodeURIComponent(canonical)}`);
  assert.equal(st.url.searchParams.get('where'), canonical);
  assert.ok(streams.some((x) => x.url.pathname === '/v1/collections/p/events' && x.url.search === ''), 'the whole collection without where');
  st.send('retry: 2000\n\nid: E:3\nevent: reset\ndata: {"collection":"p","epoch":"E","version":3,"reset":true,"records":[]}\n\n');
  st.send('id: E:6\nevent: commit\ndata: {"version":6,"after":3,"at":"t","ops":[{"op":"put","id":"a","value":{"price":5}}]}\n\n');
  st.send('id: E:9\nevent: progress\ndata: {"epoch":"E","version":9}\n\n: ping\n\n');
  await until(() => v.version === 9, 'progress to 9');
  assert.deepEqual(Object.fromEntries(v.records), { a: { price: 5 } });
  assert.equal(all.version, 0, 'the other view is another stream');
  // A gap reopens the stream from the cursor, with where again.
  st.send('id: E:12\nevent: commit\ndata: {"version":12,"after":10,"ops":[]}\n\n');
  await until(() => streams.length === 3, 'reopened');
  assert.equal(v.version, 9);
  assert.equal(streams[2].headers['Last-Event-ID'], 'E:9');
  assert.equal(streams[2].url.searchParams.get('where'), canonical);
  s.close();
});

test('ndjson: where= on the stream URL with after and epoch; a progress line moves the cursor', async (t) => {
  const streams = [];
  const fetch = fakeFetch((method, url, init) => {
    if (url.pathname.endsWith('/stream')) {
      const { st, res } = stream('application/x-ndjson', init);
      streams.push({ ...st, url });
      return res;
    }
    return json({ error: { code: 'not_found', message: 'x' } }, 404);
  });
  const s = open(t, { url: BASE, fetch, transport: 'ndjson', token: 'tok', backoff: { base: 1, cap: 5 } });
  const v = s.collection('p', { where: { $or: [{ category: 'lamp' }, { 'dims.w': { $gt: 40 } }] } });
  await until(() => streams.length === 1, 'stream');
  const canonical = '{"$or":[{"category":"lamp"},{"dims.w":{"$gt":40}}]}';
  assert.equal(streams[0].url.search, `?where=${encodeURIComponent(canonical)}`);
  assert.equal(streams[0].headers.Authorization, 'Bearer tok', 'token handling unchanged');
  streams[0].line({ type: 'reset', collection: 'p', epoch: 'E', version: 4, reset: true, records: [] });
  streams[0].line({ type: 'commit', collection: 'p', epoch: 'E', version: 7, after: 4, ops: [put('a', { category: 'lamp' })] });
  streams[0].line({ type: 'progress', collection: 'p', epoch: 'E', version: 11 });
  await until(() => v.version === 11, 'progress');
  streams[0].end();
  await until(() => streams.length === 2, 'reconnected');
  const q = streams[1].url.searchParams;
  assert.deepEqual([q.get('after'), q.get('epoch'), q.get('where')], ['11', 'E', canonical]);
  assert.match(streams[1].url.search, /^\?after=11&epoch=E&where=%7B/);
  // A progress from another epoch reopens from the cursor.
  streams[1].line({ type: 'progress', collection: 'p', epoch: 'F', version: 2 });
  await until(() => streams.length === 3, 'reopened after another epoch');
  assert.equal(v.version, 11);
  s.close();
});

test('longpoll: where= on the snapshot and changes URLs; the answer\'s version moves a filtered view past commits not its own', async (t) => {
  let head = 2;
  const fetch = fakeFetch((method, url) => {
    if (url.pathname === '/v1/collections/lp') {
      if (url.searchParams.has('where')) return json({ collection: 'lp', epoch: 'E', version: 2, records: [rec('a', LAMPS, 2)] });
      return json({ collection: 'lp', epoch: 'E', version: 2, records: [rec('a', LAMPS, 2), rec('b', {}, 1)] });
    }
    if (url.pathname === '/v1/collections/lp/changes') {
      const after = Number(url.searchParams.get('after'));
      // Held, then answered with nothing new (a real server answers at once when a commit comes).
      if (after >= head) return new Promise((r) => setTimeout(() => r(json({ epoch: 'E', version: after, commits: [] })), 20));
      if (!url.searchParams.has('where')) {
        const commits = [];
        for (let v = after + 1; v <= head; v++) commits.push({ version: v, ops: [] });
        return json({ epoch: 'E', version: head, commits });
      }
      // Of 3…6, only 4 concerns the view; an answer without commits past 4
      // (a timer apart: a client that never moves past 4 spins, and fails).
      if (after < 4) return json({ epoch: 'E', version: head, commits: [{ version: 4, after: 2, ops: [put('c', LAMPS)] }] });
      return new Promise((r) => setTimeout(() => r(json({ epoch: 'E', version: head, commits: [] })), 1));
    }
    return json({ error: { code: 'not_found', message: 'no such endpoint' } }, 404);
  });
  const s = open(t, { url: BASE, transport: 'longpoll', fetch });
  const v = s.collection('lp', { where: LAMPS });
  const all = s.collection('lp');
  await within(v.ready, 'ready');
  await within(all.ready, 'ready of the whole');
  assert.deepEqual([...v.records.keys()], ['a']);
  head = 6;
  await within(v.waitFor(6), 'waitFor(6)');
  await within(all.waitFor(6), 'waitFor(6) of the whole');
  assert.equal(v.version, 6);
  assert.deepEqual([...v.records.keys()], ['a', 'c']);
  const canonical = encodeURIComponent('{"category":"lamp"}');
  const mine = fetch.calls.filter((c) => c.url.searchParams.has('where'));
  assert.ok(mine.length >= 2);
  assert.ok(mine.some((c) => c.url.pathname === '/v1/collections/lp' && c.url.search === `?where=${canonical}`), 'snapshot');
  const changes = mine.find((c) => c.url.pathname.endsWith('/changes'));
  assert.ok(changes.url.search.endsWith(`&where=${canonical}`), changes.url.search);
  assert.deepEqual([changes.url.searchParams.get('after'), changes.url.searchParams.get('epoch'), changes.url.searchParams.get('wait')], ['2', 'E', '25s']);
  // The whole collection's requests carry no where.
  assert.ok(fetch.calls.filter((c) => !c.url.searchParams.has('where')).length >= 2);
  s.close();
});

test('poll: where= on the snapshot and changes; the version check stays the collection\'s; caught up by the answer\'s version', async (t) => {
  let head = 1;
  const fetch = fakeFetch((method, url, init) => {
    const p = url.pathname;
    if (p === '/v1/collections/pl') return json({ epoch: 'E', version: 1, records: [] });
    if (p.endsWith('/version')) {
      if (init.headers['If-None-Match'] === `"E:${head}"`) return new Response(null, { status: 304 });
      return json({ epoch: 'E', version: head });
    }
    if (p.endsWith('/changes')) return json({ epoch: 'E', version: head, commits: [] }); // nothing of the view's
    return json({}, 404);
  });
  const s = open(t, { url: BASE, transport: 'poll', fetch, pollInterval: 10 });
  const v = s.collection('pl', { where: { $id: { $in: ['x', 'y'] } } });
  await within(v.ready, 'ready');
  head = 3;
  await within(v.waitFor(3), 'waitFor(3)');
  await tick(60);
  const changes = fetch.calls.filter((c) => c.url.pathname.endsWith('/changes'));
  assert.equal(changes.length, 1, 'once caught up, the version check answers 304');
  assert.equal(changes[0].url.searchParams.get('where'), '{"$id":{"$in":["x","y"]}}');
  assert.equal(fetch.calls[0].url.searchParams.get('where'), '{"$id":{"$in":["x","y"]}}', 'snapshot');
  assert.ok(fetch.calls.filter((c) => c.url.pathname.endsWith('/version')).every((c) => c.url.search === ''));
  s.close();
});

test('http: a filter the server refuses (400) ends that view, not the link', async (t) => {
  const fetch = fakeFetch((method, url) => {
    if (url.pathname !== '/v1/collections/p') return new Promise(() => {});
    if (url.searchParams.get('where') === '{"price":{"$regex":"x"}}') {
      return json({ error: { code: 'bad_request', message: 'where: unknown operator "$regex"' } }, 400);
    }
    return json({ epoch: 'E', version: 1, records: [] });
  });
  const errors = [];
  const s = open(t, { url: BASE, transport: 'longpoll', fetch, backoff: { base: 1, cap: 2 } });
  s.on('error', (e) => errors.push(e));
  const bad = s.collection('p', { where: { price: { $regex: 'x' } } });
  const good = s.collection('p', { where: LAMPS });
  await assert.rejects(bad.ready, { code: 'bad_request', status: 400 });
  assert.equal(await within(good.ready, 'ready'), 1);
  await until(() => s.status.state === 'live', 'live');
  await tick(30);
  assert.equal(errors.length, 1);
  assert.equal(fetch.calls.filter((c) => c.url.searchParams.get('where') === '{"price":{"$regex":"x"}}').length, 1, 'not retried');
  assert.equal(fetch.calls.filter((c) => c.url.pathname === '/v1/collections/p' && c.url.searchParams.get('where') === '{"category":"lamp"}').length, 1, 'the good view was not restarted');
  s.close();
});
