// connect({persist}): the cache (key, cursor, epoch, version tag), the
// outbox (order, keys, resends, rebased preconditions, refusals) and the
// leader, against a fake server over long-poll, with the in-memory store
// in place of IndexedDB (the browser tests in e2e/browser use IndexedDB).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, fakeFetch, json, open, until } from '../testing/fakes.js';
import { basesFor, MemoryStore, overlay, principalOf, rebase, scopeOf } from '../viewsync/persist.js';
import { mergePatch } from '../viewsync/json.js';
import { filterPaths } from '../viewsync/view.js';

/**
 * fakeServer is one collection, "items", over long-poll: snapshot,
 * …/changes (a reset for another epoch), record writes with If-Match /
 * If-None-Match, commits, and Idempotency-Key: a key seen again answers
 * what it answered first without writing. down makes every request fail
 * without an answer; loseNext applies the next write and then fails as if
 * its answer were lost; busy answers that many keyed writes 409
 * idempotency_in_flight, as a server still applying an earlier send of the
 * same key does.
 */
function fakeServer({ epoch = 'E', records = {} } = {}) {
  const srv = {
    epoch, version: 0, recs: new Map(), log: [], keys: new Map(), writes: [], down: false, loseNext: false, busy: 0,
    /** write applies ops as one commit. */
    write(ops) {
      srv.version++;
      for (const op of ops) {
        if (op.op === 'delete') srv.recs.delete(op.id);
        else srv.recs.set(op.id, { value: op.value, version: srv.version });
      }
      srv.log.push({ version: srv.version, ops });
      return srv.version;
    },
  };
  for (const [id, value] of Object.entries(records)) srv.write([{ op: 'put', id, value }]);
  const snapshot = () => ({ epoch: srv.epoch, version: srv.version, records: [...srv.recs].map(([id, r]) => ({ id, value: r.value, version: r.version })) });
  const fail412 = (id) => json({ error: { code: 'precondition_failed', message: `${id} moved` } }, 412);
  srv.fetch = fakeFetch(async (method, url, init) => {
    if (srv.down) throw new TypeError('fetch failed');
    const p = url.pathname;
    if (p === '/v1/collections/items' && method === 'GET') return json(snapshot());
    if (p.endsWith('/version')) return json({ epoch: srv.epoch, version: srv.version });
    if (p.endsWith('/changes')) {
      if (url.searchParams.get('epoch') !== srv.epoch) return json({ ...snapshot(), reset: true });
      const after = Number(url.searchParams.get('after'));
      if (after < srv.version) return json({ epoch: srv.epoch, version: srv.version, commits: srv.log.filter((c) => c.version > after) });
      await new Promise((r) => setTimeout(r, 20));
      if (srv.down) throw new TypeError('fetch failed');
      return json({ epoch: srv.epoch, version: srv.version, commits: [] });
    }
    const key = init.headers?.['Idempotency-Key'];
    if (key && srv.busy > 0) {
      srv.busy--;
      return json({ error: { code: 'idempotency_in_flight', message: 'a request with this key is still in progress' } }, 409);
    }
    if (key && srv.keys.has(key)) return json(srv.keys.get(key), 200, { 'Idempotent-Replayed': 'true' });
    srv.writes.push({ method, path: p, key, headers: init.headers, body: init.body && JSON.parse(init.body) });
    let answer;
    const m = p.match(/\/records\/(.+)$/);
    if (m) {
      const id = decodeURIComponent(m[1]);
      const cur = srv.recs.get(id);
      const im = init.headers['If-Match'];
      if (im && (!cur || `"${cur.version}"` !== im)) return fail412(id);
      if (init.headers['If-None-Match'] === '*' && cur) return fail412(id);
      if (method === 'PUT') answer = { version: srv.write([{ op: 'put', id, value: JSON.parse(init.body) }]) };
      else if (method === 'PATCH') answer = { version: srv.write([{ op: 'put', id, value: mergePatch(cur?.value ?? {}, JSON.parse(init.body)) }]) };
      else answer = { version: srv.write([{ op: 'delete', id }]) };
    } else if (p.endsWith('/commits')) {
      const body = JSON.parse(init.body);
      for (const [id, v] of Object.entries(body.if || {})) if ((srv.recs.get(id)?.version ?? 0) !== v) return fail412(id);
      answer = { version: srv.write(body.ops) };
    } else if (p.startsWith('/v1/calls/')) {
      answer = { result: { called: true, arg: JSON.parse(init.body).arg }, versions: {} };
    } else {
      return json({ error: { code: 'not_found', message: p } }, 404);
    }
    if (key) srv.keys.set(key, answer);
    if (srv.loseNext) {
      srv.loseNext = false;
      throw new TypeError('connection reset');
    }
    return json(answer);
  });
  return srv;
}

const opts = (srv, store, more = {}) => ({
  url: BASE, transport: 'longpoll', fetch: srv.fetch, backoff: { base: 5, cap: 20 }, maxSilentAttempts: 0,
  ...more, persist: { store, locks: null, ...more.persist },
});

test('persist: a view reopened shows the cache at once (cached), then resumes from its cursor, not a snapshot', async (t) => {
  const srv = fakeServer({ records: { a: 1, b: 2 } });
  const store = new MemoryStore();
  const s1 = open(t, opts(srv, store));
  const v1 = s1.collection('items');
  await v1.ready;
  await until(() => store.views.size === 1, 'the view saved');
  s1.close();

  srv.down = true;
  const s2 = open(t, opts(srv, store));
  const v2 = s2.collection('items');
  await v2.ready;
  assert.deepEqual([...v2.records], [['a', 1], ['b', 2]]);
  assert.equal(v2.cached, true);
  assert.equal(v2.version, 2);
  await until(() => s2.sync.state === 'cached', 'sync state cached');

  srv.write([{ op: 'put', id: 'c', value: 3 }]);
  const before = srv.fetch.calls.length;
  srv.down = false;
  await v2.waitFor(3);
  assert.equal(v2.cached, false);
  assert.deepEqual([...v2.records.keys()], ['a', 'b', 'c']);
  const after = srv.fetch.calls.slice(before);
  assert.ok(!after.some((c) => c.url.pathname === '/v1/collections/items'), 'no snapshot');
  const ch = after.find((c) => c.url.pathname.endsWith('/changes'));
  assert.equal(ch.url.searchParams.get('after'), '2');
  assert.equal(ch.url.searchParams.get('epoch'), 'E');
  await until(() => s2.sync.state === 'live', 'sync state live');
});

test('persist: a save writes the records that changed, not the whole view', async (t) => {
  const records = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`r${i}`, i]));
  const srv = fakeServer({ records });
  const store = new MemoryStore();
  const s = open(t, opts(srv, store));
  const v = s.collection('items');
  await v.ready;
  await until(() => store.views.size === 1, 'the view saved');
  assert.equal(store.recordWrites, 100, 'the first save writes every record');
  srv.write([{ op: 'put', id: 'r7', value: 'seven' }, { op: 'delete', id: 'r8' }]);
  await v.waitFor(101);
  await until(() => [...store.views.values()][0].version === 101, 'the commit saved');
  assert.equal(store.recordWrites, 102, 'the commit saves its two records');
  const cached = [...store.views.values()][0];
  assert.equal(cached.records.length, 99);
  assert.deepEqual(cached.records.find((r) => r.id === 'r7'), { id: 'r7', value: 'seven', version: 101 });
  assert.ok(!cached.records.some((r) => r.id === 'r8'));
});

test('persist: a cursor of another epoch gets a reset that replaces the cache', async (t) => {
  const srv = fakeServer({ records: { a: 1 } });
  const store = new MemoryStore();
  const s1 = open(t, opts(srv, store));
  await s1.collection('items').ready;
  await until(() => store.views.size === 1, 'the view saved');
  s1.close();

  const srv2 = fakeServer({ epoch: 'F', records: { z: 26 } });
  const s2 = open(t, opts(srv2, store));
  const v = s2.collection('items');
  const seen = [];
  v.subscribe((c) => seen.push(c.type));
  await until(() => v.epoch === 'F', 'the new epoch');
  assert.deepEqual([...v.records], [['z', 26]]);
  assert.equal(seen.at(-1), 'reset');
  await until(() => [...store.views.values()][0].epoch === 'F', 'the cache replaced');
  assert.deepEqual([...store.views.values()][0].records, [{ id: 'z', value: 26, version: 1 }]);
});

test('persist: another version tag drops the cache; another principal has its own; the token is never stored', async (t) => {
  const srv = fakeServer({ records: { a: 1 } });
  const store = new MemoryStore();
  const token = 'secret-token-123';
  const s1 = open(t, opts(srv, store, { token, persist: { version: 'v1' } }));
  await s1.collection('items').ready;
  await until(() => store.views.size === 1, 'the view saved');
  s1.close();
  assert.ok(!JSON.stringify([...store.views.values(), ...store.tags.keys()]).includes(token), 'the token is not in the store');

  srv.down = true;
  const same = open(t, opts(srv, store, { token, persist: { version: 'v1' } }));
  assert.equal(await same.collection('items').ready, 1, 'same tag, same token: cached');
  same.close();
  const other = open(t, opts(srv, store, { token: 'another-token', persist: { version: 'v1' } }));
  const ov = other.collection('items');
  await until(() => other._persist.scope !== '', 'scope');
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(ov.synced, false, 'another principal: no cache');
  other.close();
  const bumped = open(t, opts(srv, store, { token, persist: { version: 'v2' } }));
  const bv = bumped.collection('items');
  await until(() => store.tags.get(bumped._persist.scope) === 'v2', 'the tag replaced');
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(bv.synced, false, 'another tag: the cache was dropped');
  assert.equal(store.views.size, 0);
});

test('persist: principalOf hashes a JWT subject (a refreshed token keeps it), else the token', async () => {
  const jwt = (sub, iat) => ['e30', Buffer.from(JSON.stringify({ sub, iat })).toString('base64url'), 'sig'].join('.');
  assert.equal(await principalOf(jwt('ana', 1)), await principalOf(jwt('ana', 2)));
  assert.notEqual(await principalOf(jwt('ana', 1)), await principalOf(jwt('ben', 1)));
  assert.notEqual(await principalOf('opaque-1'), await principalOf('opaque-2'));
  assert.equal(await principalOf(''), 'anonymous');
  assert.match(await principalOf('opaque-1'), /^[0-9a-f]{32}$/);
  assert.notEqual(scopeOf('http://a', 'p'), scopeOf('http://b', 'p'));
});

test('persist: writes made offline show at once (pending), then go in order with a key each; the view ends with the server\'s', async (t) => {
  const srv = fakeServer({ records: { a: { n: 1 }, b: { n: 2 } } });
  const store = new MemoryStore();
  const s = open(t, opts(srv, store));
  const v = s.collection('items');
  await until(() => s.status.state === 'live', 'live');
  srv.down = true;
  await until(() => s.status.state !== 'live', 'offline');
  const events = [];
  s.on('outbox', (e) => events.push(`${e.type} ${e.write.kind}`));
  const done = [
    v.put('c', { n: 3 }, { ifVersion: 0 }),
    v.patch('a', { m: 1 }),
    v.delete('b'),
    v.commit([{ op: 'put', id: 'd', value: 4 }]),
  ];
  await Promise.all(done.map((p) => p.queued));
  assert.deepEqual(Object.fromEntries(v.records), { a: { n: 1, m: 1 }, c: { n: 3 }, d: 4 });
  assert.equal(v.record('c').pending, true);
  assert.equal(v.record('c').version, 0);
  assert.deepEqual(s.sync, { state: 'offline', pending: 4 });
  assert.equal(srv.writes.length, 0);

  srv.down = false;
  const versions = await Promise.all(done);
  assert.deepEqual(versions, [3, 4, 5, 6]);
  assert.deepEqual(srv.writes.map((w) => `${w.method} ${w.path}`), [
    'PUT /v1/collections/items/records/c', 'PATCH /v1/collections/items/records/a',
    'DELETE /v1/collections/items/records/b', 'POST /v1/collections/items/commits',
  ]);
  assert.equal(srv.writes[0].headers['If-None-Match'], '*');
  const keys = srv.writes.map((w) => w.key);
  assert.equal(new Set(keys).size, 4);
  for (const k of keys) assert.match(k, /^[0-9a-f-]{32,36}$/);
  await v.waitFor(6);
  await until(() => s.sync.state === 'live', 'live, nothing pending');
  assert.deepEqual(Object.fromEntries(v.records), { a: { n: 1, m: 1 }, c: { n: 3 }, d: 4 });
  assert.equal(v.record('c').pending, undefined);
  assert.equal(v.record('c').version, 3);
  assert.deepEqual(events, ['queued put', 'queued patch', 'queued delete', 'queued commit', 'sent put', 'sent patch', 'sent delete', 'sent commit']);
  assert.equal(store.writes.size, 0);
});

test('persist: a write whose answer was lost goes again with the same key, and is applied once', async (t) => {
  const srv = fakeServer({ records: { a: 1 } });
  const s = open(t, opts(srv, new MemoryStore()));
  const v = s.collection('items');
  await v.ready;
  srv.loseNext = true;
  const version = await v.put('a', 2);
  assert.equal(version, 2);
  assert.equal(srv.log.length, 2, 'one commit for the write');
  const sends = srv.fetch.calls.filter((c) => c.init.method === 'PUT');
  assert.equal(sends.length, 2, 'sent twice');
  assert.equal(sends[0].init.headers['Idempotency-Key'], sends[1].init.headers['Idempotency-Key']);
});

test('persist: a write answered "still in progress" (409 idempotency_in_flight) stays queued and goes again with its key', async (t) => {
  const srv = fakeServer({ records: { a: 1 } });
  const s = open(t, opts(srv, new MemoryStore()));
  const v = s.collection('items');
  await v.ready;
  const failed = [];
  s.on('outbox', (e) => { if (e.type === 'failed') failed.push(e.error.code); });
  srv.busy = 2;
  assert.equal(await v.put('a', 2), 2);
  assert.equal(srv.busy, 0, 'both busy answers were met');
  assert.equal(srv.log.length, 2, 'one commit for the write');
  assert.deepEqual(failed, []);
  const keys = srv.fetch.calls.filter((c) => c.init.method === 'PUT').map((c) => c.init.headers['Idempotency-Key']);
  assert.equal(keys.length, 3, 'sent three times');
  assert.equal(new Set(keys).size, 1, 'with one key');
});

test('persist: a queued write taken on top of another queued one gets its version as precondition once that one lands', async (t) => {
  const srv = fakeServer({ records: { a: { n: 1 } } });
  const s = open(t, opts(srv, new MemoryStore()));
  const v = s.collection('items');
  await v.ready;
  srv.down = true;
  const first = v.put('a', { n: 2 }, { ifVersion: 1 });
  await first.queued;
  // Edited again from what the view shows (pending): its version is still 1.
  assert.equal(v.record('a').version, 1);
  const second = v.put('a', { n: 3 }, { ifVersion: v.record('a').version });
  await second.queued;
  srv.down = false;
  assert.deepEqual(await Promise.all([first, second]), [2, 3]);
  assert.equal(srv.writes[1].headers['If-Match'], '"2"');
});

test('persist: a refused write rejects, its overlay goes, and the next one is still sent', async (t) => {
  const srv = fakeServer({ records: { a: 1 } });
  const s = open(t, opts(srv, new MemoryStore()));
  const v = s.collection('items');
  await v.ready;
  srv.down = true;
  const failed = [];
  s.on('outbox', (e) => { if (e.type === 'failed') failed.push(e.error.code); });
  const bad = v.put('a', 5, { ifVersion: 1 });
  const good = v.put('b', 6);
  await Promise.all([bad.queued, good.queued]);
  assert.equal(v.get('a'), 5);
  srv.write([{ op: 'put', id: 'a', value: 9 }]); // someone else, meanwhile
  srv.down = false;
  await assert.rejects(bad, { code: 'precondition_failed', status: 412 });
  assert.equal(await good, 3);
  await v.waitFor(3);
  assert.equal(v.get('a'), 9);
  assert.equal(v.record('a').pending, undefined);
  assert.deepEqual(failed, ['precondition_failed']);
});

test('persist: a call with queue goes through the outbox', async (t) => {
  const srv = fakeServer();
  const s = open(t, opts(srv, new MemoryStore()));
  srv.down = true;
  const p = s.call('hello', { x: 1 }, 'ctx', { queue: true });
  await until(() => s.outbox.length === 1, 'queued');
  assert.equal(s.outbox[0].kind, 'call');
  srv.down = false;
  assert.deepEqual(await p, { result: { called: true, arg: { x: 1 } }, context: 'ctx' });
  assert.ok(srv.writes[0].key);
});

/** fakeLocks is an exclusive Web Lock per name, shared by the sessions given it. */
function fakeLocks() {
  const queues = new Map();
  return {
    request(name, fn) {
      const prev = queues.get(name) || Promise.resolve();
      const run = prev.then(() => fn());
      queues.set(name, run.catch(() => {}));
      return run;
    },
  };
}

test('persist: two sessions (tabs) share one outbox: the leader sends a write the other queued, once; both see it settle', async (t) => {
  const srv = fakeServer({ records: { a: 1 } });
  const store = new MemoryStore();
  const locks = fakeLocks();
  const tab1 = open(t, opts(srv, store, { persist: { locks } }));
  const tab2 = open(t, opts(srv, store, { persist: { locks } }));
  const v1 = tab1.collection('items');
  const v2 = tab2.collection('items');
  await Promise.all([v1.ready, v2.ready]);
  await until(() => tab1._persist.leader || tab2._persist.leader, 'a leader');
  assert.ok(!(tab1._persist.leader && tab2._persist.leader), 'one leader');
  const follower = tab1._persist.leader ? tab2 : tab1;
  const fv = follower === tab1 ? v1 : v2;
  const other = follower === tab1 ? v2 : v1;
  srv.down = true;
  const p = fv.put('a', 2);
  await p.queued;
  await until(() => (follower === tab1 ? tab2 : tab1).sync.pending === 1, 'the leader knows of it');
  srv.down = false;
  assert.equal(await p, 2, 'the follower\'s promise resolves with what the leader got');
  await Promise.all([v1.waitFor(2), v2.waitFor(2)]);
  await until(() => tab1.sync.pending === 0 && tab2.sync.pending === 0, 'settled in both');
  assert.equal(srv.writes.length, 1, 'sent once');
  assert.equal(other.get('a'), 2);
});

test('persist: overlay, basesFor and rebase', () => {
  const w1 = { key: 'k1', kind: 'put', collection: 'c', id: 'a', value: { n: 1 } };
  const w2 = { key: 'k2', kind: 'patch', collection: 'c', id: 'a', value: { m: 2 } };
  const w3 = { key: 'k3', kind: 'delete', collection: 'c', id: 'b' };
  assert.deepEqual(overlay([w1, w2, w3], 'c', 'a', { old: true }, mergePatch), { value: { n: 1, m: 2 }, pending: true });
  assert.deepEqual(overlay([w1, w2, w3], 'c', 'b', 5, mergePatch), { value: undefined, pending: true });
  assert.deepEqual(overlay([w1], 'other', 'a', 5, mergePatch), { value: 5, pending: false });
  assert.deepEqual(basesFor([w1, w2, w3], 'c', { a: 4, x: 1 }), { a: 'k2' });
  assert.equal(basesFor([w1], 'c', undefined), undefined);
  const later = { key: 'k4', ifs: { a: 4 }, bases: { a: 'k2' } };
  assert.deepEqual(rebase([later], w1, 7), []);
  assert.deepEqual(rebase([later], w2, 8), [later]);
  assert.deepEqual(later.ifs, { a: 8 });
});

test('persist: a filtered view shows a queued write only over its records, and only when it keeps the fields the filter reads', async (t) => {
  assert.deepEqual(filterPaths({ category: 'lamp', $or: [{ 'dims.w': 1 }, { $id: 'x' }], $and: [{ price: { $lt: 3 } }] }).sort(), ['category', 'dims.w', 'price']);
  const srv = fakeServer({ records: { a: { category: 'lamp', price: 1 }, b: { category: 'lamp', price: 2 } } });
  // The fake serves the whole collection whatever the filter: both match.
  const s = open(t, opts(srv, new MemoryStore()));
  const v = s.collection('items', { where: { category: 'lamp' } });
  await v.ready;
  srv.down = true;
  await Promise.all([
    v.put('a', { category: 'lamp', price: 5 }).queued,
    v.put('b', { category: 'desk', price: 6 }).queued,
    v.put('c', { category: 'lamp', price: 7 }).queued,
  ]);
  assert.deepEqual(v.get('a'), { category: 'lamp', price: 5 }, 'a keeps its category: shown');
  assert.deepEqual(v.get('b'), { category: 'lamp', price: 2 }, 'b changes its category: the server decides');
  assert.equal(v.record('b').pending, true);
  assert.equal(v.get('c'), undefined, 'c is not in the view: not shown');
});

test('persist: a precondition taken on a write that landed before the view caught up is on the version it got', async (t) => {
  const srv = fakeServer({ records: { a: 1 } });
  const s = open(t, opts(srv, new MemoryStore(), { transport: 'poll', pollInterval: 60000 }));
  const v = s.collection('items');
  await v.ready;
  assert.equal(await v.put('b', 2, { ifVersion: 0 }), 2);
  assert.equal(v.version, 1, 'the view has not caught up');
  assert.deepEqual(v.record('b'), { id: 'b', value: 2, version: 0, pending: true });
  assert.equal(await v.put('b', 3, { ifVersion: v.record('b').version }), 3);
  assert.equal(srv.writes[1].headers['If-Match'], '"2"');
});
