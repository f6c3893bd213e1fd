// Session tests against fake transports (no server, no browser): the
// WebSocket protocol, acks, read-your-writes calls, gap resync, fallback,
// the HTTP transports' cursors and error mapping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ViewsyncError } from '../viewsync.js';
import { BASE, fakeFetch, fakeWS, json, open, until } from '../testing/fakes.js';

test('ws: subscribe, apply, throttled ack, unsubscribe', async (t) => {
  const WS = fakeWS();
  const s = open(t, { url: BASE, token: 't k', WebSocket: WS, fetch: fakeFetch(() => json({})) });
  const v = s.collection('items');
  await until(() => WS.all[0]?.of('subscribe').length === 1, 'subscribe');
  const ws = WS.all[0];
  assert.equal(ws.url, 'ws://vs.test/v1/ws?token=t%20k');
  assert.deepEqual(ws.of('subscribe')[0], { type: 'subscribe', collection: 'items' });
  assert.deepEqual(s.status, { state: 'live', transport: 'ws' });

  const events = [];
  v.subscribe((e) => events.push(e));
  ws.deliver({ type: 'reset', collection: 'items', epoch: 'E', version: 2, reset: true, records: [{ id: 'a', value: 1, version: 2 }] });
  assert.equal(await v.ready, 2);
  for (let i = 3; i <= 8; i++) ws.deliver({ type: 'commit', collection: 'items', epoch: 'E', version: i, ops: [{ op: 'put', id: `r${i}`, value: i }] });
  ws.deliver({ type: 'commit', collection: 'other', epoch: 'E', version: 1, ops: [] }); // not followed: ignored
  assert.equal(v.version, 8);
  assert.equal(v.get('r8'), 8);
  assert.deepEqual(events.map((e) => e.type), ['reset', 'commit', 'commit', 'commit', 'commit', 'commit', 'commit']);
  assert.deepEqual(events[1].changed, ['r3']);

  // Acks: few, throttled, never ahead of what was received.
  await until(() => ws.of('ack').length >= 1, 'ack');
  await new Promise((r) => setTimeout(r, 300));
  const acks = ws.of('ack');
  assert.ok(acks.length <= 2, `acks ${JSON.stringify(acks)}`);
  assert.deepEqual(acks.at(-1), { type: 'ack', collection: 'items', version: 8 });

  v.close();
  assert.deepEqual(ws.of('unsubscribe'), [{ type: 'unsubscribe', collection: 'items' }]);
  s.close();
  assert.equal(s.status.state, 'closed');
});

test('ws: a gap reconnects and resumes from the cursor', async (t) => {
  const WS = fakeWS();
  const s = open(t, { url: BASE, WebSocket: WS, fetch: fakeFetch(() => json({})), collections: ['c'] });
  const v = s.collection('c');
  await until(() => WS.all[0]?.of('subscribe').length === 1, 'subscribe');
  WS.all[0].deliver({ type: 'reset', collection: 'c', epoch: 'E', version: 4, records: [] });
  WS.all[0].deliver({ type: 'commit', collection: 'c', epoch: 'E', version: 6, ops: [{ op: 'put', id: 'x', value: 1 }] });
  assert.equal(v.version, 4, 'gap not applied');
  await until(() => WS.all[1]?.of('subscribe').length === 1, 'resubscribe on a new socket');
  assert.ok(WS.all[0].closed);
  assert.deepEqual(WS.all[1].of('subscribe')[0], { type: 'subscribe', collection: 'c', after: 4, epoch: 'E' });
  WS.all[1].deliver({ type: 'commit', collection: 'c', epoch: 'E', version: 5, ops: [] });
  assert.equal(v.version, 5);
  s.close();
});

test('ws: call resolves only once the views include its versions', async (t) => {
  const WS = fakeWS();
  const s = open(t, { url: BASE, WebSocket: WS, fetch: fakeFetch(() => json({})) });
  const v = s.collection('a');
  await until(() => WS.all[0]?.of('subscribe').length === 1, 'subscribe');
  const ws = WS.all[0];
  ws.deliver({ type: 'reset', collection: 'a', epoch: 'E', version: 1, records: [] });

  let done = false;
  const p = s.call('bump', { n: 1 }, { mine: true }).then((r) => { done = true; return r; });
  await until(() => ws.of('call').length === 1, 'call sent');
  const call = ws.of('call')[0];
  assert.equal(call.name, 'bump');
  assert.deepEqual(call.arg, { n: 1 });
  ws.deliver({ type: 'result', id: call.id, result: { ok: 1 }, versions: { a: 2, b: 7 } });
  // b is not open: it is subscribed for the wait.
  await until(() => ws.of('subscribe').some((m) => m.collection === 'b'), 'temporary subscribe');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(done, false);
  ws.deliver({ type: 'commit', collection: 'a', epoch: 'E', version: 2, ops: [] });
  ws.deliver({ type: 'reset', collection: 'b', epoch: 'F', version: 6, records: [] });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(done, false, 'b at 6 < 7');
  ws.deliver({ type: 'commit', collection: 'b', epoch: 'F', version: 7, ops: [] });
  assert.deepEqual(await p, { result: { ok: 1 }, context: { mine: true } });
  assert.deepEqual(ws.of('unsubscribe'), [{ type: 'unsubscribe', collection: 'b' }], 'temporary view closed');
  assert.equal(v.version, 2);

  // Errors answer with code and status.
  const q = s.call('nope', null);
  await until(() => ws.of('call').length === 2, 'second call');
  ws.deliver({ type: 'error', id: ws.of('call')[1].id, code: 'not_found', message: 'no call handler named "nope"' });
  await assert.rejects(q, (e) => e instanceof ViewsyncError && e.code === 'not_found' && e.status === 404);
  s.close();
});

test('ws: writes go over the socket and resolve the version', async (t) => {
  const WS = fakeWS();
  const s = open(t, { url: BASE, WebSocket: WS, fetch: fakeFetch(() => json({})) });
  const v = s.collection('w');
  await until(() => s.status.state === 'live', 'live');
  const ws = WS.all[0];
  const p = v.put('k', { x: 1 }, { ifVersion: 3 });
  await until(() => ws.of('commit').length === 1, 'commit');
  const m = ws.of('commit')[0];
  assert.deepEqual({ ...m, id: undefined }, { type: 'commit', id: undefined, collection: 'w', ops: [{ op: 'put', id: 'k', value: { x: 1 } }], if: { k: 3 } });
  ws.deliver({ type: 'result', id: m.id, result: { version: 9 }, versions: { w: 9 } });
  assert.equal(await p, 9);
  const d = v.delete('k');
  await until(() => ws.of('commit').length === 2, 'delete');
  ws.deliver({ type: 'error', id: ws.of('commit')[1].id, code: 'precondition_failed', message: 'no' });
  await assert.rejects(d, { code: 'precondition_failed', status: 412 });
  // A socket lost with a write in flight rejects it.
  const lost = v.put('z', 1);
  await until(() => ws.of('commit').length === 3, 'third');
  ws.close();
  await assert.rejects(lost, { code: 'unavailable' });
  s.close();
});

test('auto: falls back from WebSocket to SSE when WS fails and HTTP works', async (t) => {
  const WS = fakeWS({ fail: true });
  const streams = [];
  const fetch = fakeFetch((method, url, init) => {
    if (url.pathname.endsWith('/version')) return json({ epoch: 'E', version: 0 });
    if (url.pathname.endsWith('/events')) {
      let ctl;
      const body = new ReadableStream({ start(c) { ctl = c; } });
      streams.push({ ctl, headers: init.headers, signal: init.signal });
      return new Response(body, { headers: { 'Content-Type': 'text/event-stream' } });
    }
    return json({ error: { code: 'not_found', message: 'x' } }, 404);
  });
  const statuses = [];
  const s = open(t, { url: BASE, WebSocket: WS, fetch, onStatus: (st) => statuses.push(`${st.transport}/${st.state}`), backoff: { base: 5, cap: 20 } });
  const v = s.collection('p');
  await until(() => streams.length === 1, 'SSE stream');
  assert.equal(WS.all.length, 2, 'two WebSocket tries');
  assert.equal(streams[0].headers['Last-Event-ID'], undefined, 'no cursor yet');
  const enc = new TextEncoder();
  const send = (i, text) => streams[i].ctl.enqueue(enc.encode(text));
  send(0, 'retry: 2000\n\n');
  await until(() => s.status.state === 'live', 'live');
  assert.equal(s.status.transport, 'sse');
  send(0, 'id: E:3\nevent: reset\ndata: {"collection":"p","epoch":"E","version":3,"reset":true,"records":[{"id":"a","value":1,"version":3}]}\n\n');
  send(0, 'id: E:4\nevent: commit\ndata: {"version":4,"at":"t","ops":[{"op":"delete","id":"a"}]}\n\n: ping\n\n');
  await until(() => v.version === 4, 'commit 4');
  assert.equal(v.records.size, 0);
  assert.equal(v.epoch, 'E');
  // A gap: the stream is reopened from the cursor.
  send(0, 'id: E:6\nevent: commit\ndata: {"version":6,"ops":[]}\n\n');
  await until(() => streams.length === 2, 'reopened stream');
  assert.ok(streams[0].signal.aborted);
  assert.equal(streams[1].headers['Last-Event-ID'], 'E:4');
  assert.equal(v.version, 4);
  // The stream ending reconnects (through the session) from the cursor too.
  send(1, 'retry: 2000\n\n');
  streams[1].ctl.close();
  await until(() => streams.length === 3, 'reconnected stream');
  assert.equal(streams[2].headers['Last-Event-ID'], 'E:4');
  assert.ok(statuses.includes('sse/live'));
  s.close();
  assert.ok(streams[2].signal.aborted, 'close aborts the stream');
});

test('longpoll: snapshot first, then changes after the cursor with wait', async (t) => {
  let head = 2;
  const fetch = fakeFetch((method, url) => {
    if (url.pathname === '/v1/collections/lp') return json({ collection: 'lp', epoch: 'E', version: 2, records: [{ id: 'a', value: 1, version: 2 }] });
    if (url.pathname === '/v1/collections/lp/changes') {
      const after = Number(url.searchParams.get('after'));
      if (after < head) {
        const commits = [];
        for (let v = after + 1; v <= head; v++) commits.push({ version: v, at: 't', ops: [{ op: 'put', id: `v${v}`, value: v }] });
        return json({ epoch: 'E', version: head, commits });
      }
      return new Promise((r) => setTimeout(() => r(json({ epoch: 'E', version: head, commits: [] })), 20));
    }
    return json({ error: { code: 'not_found', message: 'no such endpoint' } }, 404);
  });
  const s = open(t, { url: BASE, transport: 'longpoll', fetch, token: () => 'tok' });
  const v = s.collection('lp');
  await v.ready;
  head = 5;
  await v.waitFor(5);
  assert.deepEqual([...v.records.keys()], ['a', 'v3', 'v4', 'v5']);
  const changes = fetch.calls.filter((c) => c.url.pathname.endsWith('/changes'));
  assert.equal(changes[0].url.searchParams.get('after'), '2');
  assert.equal(changes[0].url.searchParams.get('epoch'), 'E');
  assert.equal(changes[0].url.searchParams.get('wait'), '25s');
  assert.equal(fetch.calls[0].init.headers.Authorization, 'Bearer tok');
  assert.equal(s.status.transport, 'longpoll');
  s.close();
});

test('poll: asks the version with If-None-Match and fetches changes only when it moved', async (t) => {
  let head = 1;
  const fetch = fakeFetch((method, url, init) => {
    const p = url.pathname;
    if (p === '/v1/collections/pl') return json({ epoch: 'E', version: 1, records: [] });
    if (p.endsWith('/version')) {
      if (init.headers['If-None-Match'] === `"E:${head}"`) return new Response(null, { status: 304 });
      return json({ epoch: 'E', version: head });
    }
    if (p.endsWith('/changes')) {
      const after = Number(url.searchParams.get('after'));
      return json({ epoch: 'E', version: head, commits: after < head ? [{ version: after + 1, ops: [] }] : [] });
    }
    return json({}, 404);
  });
  const s = open(t, { url: BASE, transport: 'poll', fetch, pollInterval: 10 });
  const v = s.collection('pl');
  await v.ready;
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(fetch.calls.filter((c) => c.url.pathname.endsWith('/changes')).length, 0, 'no changes while unchanged');
  head = 3;
  await v.waitFor(3);
  assert.ok(fetch.calls.some((c) => c.init.headers?.['If-None-Match'] === '"E:1"'));
  s.close();
});

test('http writes: paths, preconditions, errors; dot ids go through commits', async (t) => {
  const fetch = fakeFetch((method, url, init) => {
    const p = url.pathname;
    if (p.endsWith('/version')) return json({ epoch: 'E', version: 0 });
    if (p.includes('/records/') && method === 'PUT') {
      if (init.headers['If-Match'] === '"1"') return json({ error: { code: 'precondition_failed', message: 'record is at 2' } }, 412);
      return json({ version: 7, record: { id: 'x', value: JSON.parse(init.body), version: 7 } });
    }
    if (p.includes('/records/') && method === 'PATCH') return json({ version: 8, record: {} });
    if (p.includes('/records/') && method === 'DELETE') return json({ version: 9 });
    if (p.endsWith('/commits')) return json({ version: 10 });
    if (p === '/v1/collections/w') return json({ epoch: 'E', version: 0, records: [] });
    if (p.endsWith('/changes')) return new Promise(() => {});
    return json({}, 404);
  });
  const s = open(t, { url: `${BASE}/prefix/`, transport: 'longpoll', fetch });
  const v = s.collection('w');
  assert.equal(await v.put('a.b/c', { n: 1 }), 7);
  const put = fetch.calls.find((c) => c.method === 'PUT');
  assert.equal(put.url.href, `${BASE}/prefix/v1/collections/w/records/a%2Eb%2Fc`);
  assert.equal(put.init.headers['Content-Type'], 'application/json');
  assert.equal(put.init.body, '{"n":1}');
  await assert.rejects(v.put('x', 1, { ifVersion: 1 }), { code: 'precondition_failed', status: 412, message: 'record is at 2' });
  assert.equal(await v.put('x', 1, { ifVersion: 0 }), 7);
  assert.equal(fetch.calls.at(-1).init.headers['If-None-Match'], '*');
  assert.equal(await v.patch('x', { a: null }, { ifVersion: 4 }), 8);
  assert.equal(fetch.calls.at(-1).init.headers['Content-Type'], 'application/merge-patch+json');
  assert.equal(fetch.calls.at(-1).init.headers['If-Match'], '"4"');
  assert.equal(await v.delete('x'), 9);
  assert.equal(await v.put('..', 1, { ifVersion: 0 }), 10);
  assert.deepEqual(JSON.parse(fetch.calls.at(-1).init.body), { ops: [{ op: 'put', id: '..', value: 1 }], if: { '..': 0 } });
  assert.equal(await v.delete('.'), 10);
  assert.throws(() => s.collection('Bad Name'), { code: 'bad_request' });
  await assert.rejects(v.put('', 1), { code: 'bad_request' });
  await assert.rejects(s.call('bad name!'), { code: 'bad_request' });
  s.close();
});

test('network failures reject with code network; the session goes offline and retries', async (t) => {
  let up = false;
  const fetch = fakeFetch((method, url) => {
    if (!up) return Promise.reject(new TypeError('fetch failed'));
    if (url.pathname === '/v1/collections/n') return json({ epoch: 'E', version: 0, records: [] });
    return new Promise(() => {});
  });
  const states = [];
  const s = open(t, { url: BASE, transport: 'longpoll', fetch, backoff: { base: 5, cap: 10 }, onStatus: (st) => states.push(st.state) });
  const v = s.collection('n');
  await assert.rejects(v.put('a', 1), (e) => e.code === 'network' && e.status === 0);
  await until(() => states.includes('offline'), 'offline');
  up = true;
  await v.ready;
  await until(() => s.status.state === 'live', 'live again');
  s.close();
});

test('auto: an auth refusal is reported, not taken for a broken transport', async (t) => {
  const WS = fakeWS({ fail: true });
  const fetch = fakeFetch(() => json({ error: { code: 'unauthorized', message: 'bad token' } }, 401));
  const states = new Set();
  const s = open(t, { url: BASE, WebSocket: WS, fetch, backoff: { base: 1, cap: 2 }, collections: ['x'], onStatus: (st) => states.add(`${st.transport}/${st.state}`) });
  await until(() => WS.all.length >= 4, 'several WebSocket tries');
  assert.equal(s.status.transport, 'ws', 'stays on WebSocket: HTTP refuses too');
  assert.deepEqual([...states].filter((x) => !x.startsWith('ws/')), []);
  assert.ok(states.has('ws/offline'));
  s.close();

  // Forced SSE with a 401: the error is emitted and the session retries.
  const errors = [];
  const s2 = open(t, { url: BASE, transport: 'sse', fetch, backoff: { base: 1, cap: 2 }, collections: ['x'] });
  s2.on('error', (e) => errors.push(e));
  await until(() => errors.length >= 2, 'errors');
  assert.deepEqual([errors[0].code, errors[0].status, errors[0].message], ['unauthorized', 401, 'bad token']);
  s2.close();
});

test('waits reject on close and on abort', async (t) => {
  const fetch = fakeFetch((method, url) => {
    if (url.pathname === '/v1/collections/w') return json({ epoch: 'E', version: 1, records: [] });
    return new Promise(() => {});
  });
  const s = open(t, { url: BASE, transport: 'longpoll', fetch });
  const v = s.collection('w');
  await v.ready;
  assert.equal(await v.waitFor(1), 1, 'already there');
  const ac = new AbortController();
  const aborted = v.waitFor(5, { signal: ac.signal });
  ac.abort(new Error('stop'));
  await assert.rejects(aborted, /stop/);
  const pending = v.waitFor(5);
  s.close();
  await assert.rejects(pending, { code: 'closed' });
  assert.throws(() => s.collection('w'), { code: 'closed' });
});

test('ws: a close for an expired token reports it and reconnects at once with a fresh token', async (t) => {
  const WS = fakeWS();
  let n = 0;
  const errors = [];
  const s = open(t, { url: BASE, WebSocket: WS, fetch: fakeFetch(() => json({})), token: () => `tok${++n}`, backoff: { base: 60000, cap: 60000 } });
  s.on('error', (e) => errors.push(e));
  const v = s.collection('c');
  await until(() => WS.all[0]?.of('subscribe').length === 1, 'subscribe');
  assert.equal(WS.all[0].url, 'ws://vs.test/v1/ws?token=tok1');
  WS.all[0].deliver({ type: 'reset', collection: 'c', epoch: 'E', version: 7, records: [] });
  assert.equal(await v.ready, 7);
  WS.all[0].onclose({ code: 4401, reason: 'token expired' });
  // Without the immediate reconnect the 60 s backoff would hold it back.
  await until(() => WS.all[1]?.of('subscribe').length === 1, 'resubscribe on a new socket');
  assert.equal(WS.all[1].url, 'ws://vs.test/v1/ws?token=tok2');
  assert.deepEqual(WS.all[1].of('subscribe')[0], { type: 'subscribe', collection: 'c', after: 7, epoch: 'E' });
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, 'unauthorized');
  assert.equal(errors[0].status, 401);
  s.close();
});

test('sse: an error event for an expired token reopens the stream at once from the cursor with a fresh token', async (t) => {
  const streams = [];
  const fetch = fakeFetch((method, url, init) => {
    if (url.pathname.endsWith('/events')) {
      let ctl;
      const body = new ReadableStream({ start(c) { ctl = c; } });
      streams.push({ ctl, headers: init.headers, signal: init.signal });
      return new Response(body, { headers: { 'Content-Type': 'text/event-stream' } });
    }
    return json({ error: { code: 'not_found', message: 'x' } }, 404);
  });
  let n = 0;
  const errors = [];
  const s = open(t, { url: BASE, fetch, transport: 'sse', token: () => `tok${++n}`, backoff: { base: 60000, cap: 60000 } });
  s.on('error', (e) => errors.push(e));
  const v = s.collection('p');
  await until(() => streams.length === 1, 'SSE stream');
  assert.equal(streams[0].headers.Authorization, 'Bearer tok1');
  const enc = new TextEncoder();
  streams[0].ctl.enqueue(enc.encode('retry: 2000\n\nid: E:3\nevent: reset\ndata: {"collection":"p","epoch":"E","version":3,"reset":true,"records":[]}\n\n'));
  await until(() => v.version === 3, 'reset');
  streams[0].ctl.enqueue(enc.encode('event: error\ndata: {"error":{"code":"unauthorized","message":"token expired; reconnect with a fresh token"}}\n\n'));
  await until(() => streams.length === 2, 'reopened stream');
  assert.equal(streams[1].headers.Authorization, 'Bearer tok2');
  assert.equal(streams[1].headers['Last-Event-ID'], 'E:3');
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, 'unauthorized');
  assert.match(errors[0].message, /token expired/);
  s.close();
});
