// view.presence against fake servers: what the client sends, and the
// members it shows from what it receives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, fakeFetch, fakeWS, json, open, tick, until } from '../testing/fakes.js';

test('ws: presence subscribes once with the view, publishes with ids, follows joins and leaves, publishes again after a reconnect', async (t) => {
  const WS = fakeWS();
  const s = open(t, { url: BASE, WebSocket: WS, fetch: fakeFetch(() => json({})) });
  const v = s.collection('p');
  const here = v.presence; // asked for in the same task: one subscribe
  const changes = [];
  here.subscribe((c) => changes.push(`${c.type}:${c.count}`));
  await until(() => WS.all[0]?.of('subscribe').length === 1, 'subscribe');
  const ws = WS.all[0];
  await tick();
  assert.deepEqual(ws.of('subscribe'), [{ type: 'subscribe', collection: 'p', presence: true }]);

  // Set before the sync: sent once the server said who this client is.
  const set = here.set({ name: 'Ana' }, { record: 'r1' });
  await set;
  assert.equal(ws.of('presence').length, 0, 'nothing sent before the sync');
  ws.deliver({ type: 'presence', collection: 'p', event: 'sync', members: [{ member: 'bob', state: { name: 'Bob' } }], count: 1, self: 'me', ttl: 30000 });
  await until(() => ws.of('presence').length === 1, 'the set');
  const msg = ws.of('presence')[0];
  assert.deepEqual({ ...msg, id: undefined }, { type: 'presence', collection: 'p', record: 'r1', state: { name: 'Ana' }, id: undefined });
  ws.deliver({ type: 'result', id: msg.id, result: null, versions: {} });
  ws.deliver({ type: 'presence', collection: 'p', event: 'join', member: 'me', record: 'r1', state: { name: 'Ana' } });
  ws.deliver({ type: 'presence', collection: 'p', event: 'join', member: 'cy', record: 'r1', state: { name: 'Cy' } });
  assert.equal(here.self, 'me');
  assert.equal(here.count, 3);
  assert.deepEqual(here.on('r1').map((m) => m.state.name), ['Cy'], 'others on r1, not this client');
  ws.deliver({ type: 'presence', collection: 'p', event: 'leave', member: 'cy' });
  assert.deepEqual(here.on('r1'), []);
  ws.deliver({ type: 'presence', collection: 'p', event: 'count', count: 250 });
  assert.equal(here.count, 250);
  assert.deepEqual(changes, ['sync:1', 'join:2', 'join:3', 'leave:2', 'count:250']);

  // A new connection: a new sync, and the state published again.
  ws.onclose?.({ code: 1006 });
  await until(() => WS.all[1]?.of('subscribe').length === 1, 'resubscribe');
  const ws2 = WS.all[1];
  assert.equal(ws2.of('subscribe')[0].presence, true);
  ws2.deliver({ type: 'presence', collection: 'p', event: 'sync', members: [], count: 0, self: 'me', ttl: 30000 });
  await until(() => ws2.of('presence').length === 1, 'the state again');
  assert.equal(ws2.of('presence')[0].record, 'r1');
  assert.equal(here.members.size, 0, 'the sync replaced the members');

  // Clear withdraws it.
  const cleared = here.clear();
  await until(() => ws2.of('presence').length === 2, 'the leave');
  const leave = ws2.of('presence')[1];
  assert.equal(leave.state, null);
  ws2.deliver({ type: 'result', id: leave.id, result: null, versions: {} });
  await cleared;
  await assert.rejects(here.set([1]), { code: 'bad_request' });
  s.close();
});

test('ws: sets refused as too frequent are tried again, the state set last once', async (t) => {
  const WS = fakeWS();
  const s = open(t, { url: BASE, WebSocket: WS, fetch: fakeFetch(() => json({})) });
  const here = s.collection('p').presence;
  await until(() => WS.all[0]?.of('subscribe').length === 1, 'subscribe');
  const ws = WS.all[0];
  ws.deliver({ type: 'presence', collection: 'p', event: 'sync', members: [], count: 0, self: 'me', ttl: 30000 });
  await until(() => here.synced, 'the sync');
  const refused = [here.set({ n: 1 }, { record: 'r1' }), here.set({ n: 2 }, { record: 'r2' })];
  await until(() => ws.of('presence').length === 2, 'two sets');
  for (const m of ws.of('presence')) {
    ws.deliver({ type: 'error', id: m.id, code: 'rate_limited', message: 'over the limit of presence sets per second' });
  }
  for (const p of refused) await assert.rejects(p, { code: 'rate_limited' });
  // Later, the state set last only.
  await until(() => ws.of('presence').length === 3, 'the set again', 5000);
  const again = ws.of('presence')[2];
  assert.deepEqual([again.record, again.state], ['r2', { n: 2 }]);
  ws.deliver({ type: 'result', id: again.id, result: null, versions: {} });
  await tick(1200);
  assert.equal(ws.of('presence').length, 3, 'sent once');
  s.close();
});

test('sse: presence=1 on the stream, and PUT …/presence with the session the stream gave', async (t) => {
  const puts = [];
  let push;
  const fetch = fakeFetch((method, url, init) => {
    if (method === 'PUT' && url.pathname === '/v1/collections/p/presence') {
      puts.push(JSON.parse(init.body));
      return new Response(null, { status: 204 });
    }
    if (url.pathname === '/v1/collections/p/events') {
      const body = new ReadableStream({ start(c) { push = (text) => c.enqueue(new TextEncoder().encode(text)); push('retry: 1000\n\n'); } });
      return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
    }
    return json({});
  });
  const s = open(t, { url: BASE, transport: 'sse', fetch });
  const v = s.collection('p');
  const here = v.presence;
  await until(() => push, 'the stream');
  const opened = fetch.calls.filter((c) => c.url.pathname === '/v1/collections/p/events');
  assert.equal(opened.at(-1).url.searchParams.get('presence'), '1');
  push('event: presence\ndata: {"type":"presence","collection":"p","event":"sync","members":[],"count":0,"self":"me","session":"S1","ttl":3000}\n\n');
  await until(() => here.synced, 'the sync');
  await here.set({ name: 'Ana' });
  assert.deepEqual(puts, [{ session: 'S1', state: { name: 'Ana' } }]);
  s.close();
});
