// The NDJSON transport against a fake fetch that streams lines: the line
// parser, the choice of NDJSON over SSE when there is a token, resuming from
// the cursor, gaps, and the server's error lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, json, open, until } from '../testing/fakes.js';
import { NDJSONParser } from '../viewsync/ndjson.js';

const enc = new TextEncoder();

/**
 * server fakes the HTTP side: GET …/stream answers a stream the test writes
 * to (streams[i].send(text), .line(obj), .end()); everything else goes to
 * other, which defaults to a 404 error body.
 */
function server({ other, type = 'application/x-ndjson' } = {}) {
  const streams = [];
  const calls = [];
  const fetch = async (url, init = {}) => {
    const u = new URL(url);
    calls.push({ url: u, init });
    if (u.pathname.endsWith('/stream')) {
      let ctl;
      const body = new ReadableStream({ start(c) { ctl = c; } });
      const st = {
        url: u, headers: init.headers, signal: init.signal,
        send: (text) => ctl.enqueue(enc.encode(text)),
        line: (obj) => ctl.enqueue(enc.encode(`${JSON.stringify(obj)}\n`)),
        end: () => ctl.close(),
      };
      streams.push(st);
      return new Response(body, { headers: { 'Content-Type': type } });
    }
    if (other) return other(u, init);
    return json({ error: { code: 'not_found', message: 'no such endpoint' } }, 404);
  };
  return { fetch, streams, calls };
}

/** failingWS is a WebSocket class whose sockets never open. */
class FailingWS {
  static count = 0;
  constructor() {
    FailingWS.count++;
    setTimeout(() => { this.onerror?.({}); this.onclose?.({ code: 1006 }); }, 1);
  }
  send() {}
  close() {}
}

const reset = (version, records = [], epoch = 'E') => ({ type: 'reset', collection: 'p', epoch, version, reset: true, records });
const commit = (version, ops = [], epoch = 'E') => ({ type: 'commit', collection: 'p', epoch, version, at: '2026-12-04T00:00:00Z', ops });

test('NDJSONParser: lines split across chunks, several per chunk, any split alike', () => {
  const values = [
    { type: 'reset', records: [{ id: 'a', value: 'ü ✓ \n escaped', version: 1 }] },
    { type: 'ping' },
    { type: 'commit', version: 2, ops: [] },
  ];
  const text = `${JSON.stringify(values[0])}\n${JSON.stringify(values[1])}\r\n\n${JSON.stringify(values[2])}\n`;
  const parse = (chunks) => {
    const got = [];
    const p = new NDJSONParser((v) => got.push(v));
    for (const c of chunks) p.push(c);
    return got;
  };
  assert.deepEqual(parse([text]), values);
  for (let i = 0; i <= text.length; i++) {
    for (const j of [i, Math.min(text.length, i + 1), Math.min(text.length, i + 7)]) {
      assert.deepEqual(parse([text.slice(0, i), text.slice(i, j), text.slice(j)]), values, `split at ${i},${j}`);
    }
  }
  assert.deepEqual(parse([...text]), values, 'one character at a time');
  // A line is only complete with its newline.
  assert.deepEqual(parse(['{"type":"ping"}']), []);
  // Blank lines, and lines that are not JSON objects, are skipped.
  assert.deepEqual(parse(['\n \n[1]\n42\n"x"\nnull\n{bad\n{"type":"ping"}\n']), [{ type: 'ping' }]);
});

test('auto with a token: WebSocket, then NDJSON with the token in the Authorization header only', async (t) => {
  FailingWS.count = 0;
  const srv = server({ other: (u) => (u.pathname.endsWith('/version') ? json({ epoch: 'E', version: 0 }) : json({}, 404)) });
  const statuses = [];
  const s = open(t, {
    url: BASE, token: 'sec ret', WebSocket: FailingWS, fetch: srv.fetch,
    backoff: { base: 1, cap: 5 }, onStatus: (st) => statuses.push(`${st.transport}/${st.state}`),
  });
  const v = s.collection('p');
  await until(() => srv.streams.length === 1, 'NDJSON stream');
  assert.equal(FailingWS.count, 2, 'two WebSocket tries first');
  const st = srv.streams[0];
  assert.equal(st.url.pathname, '/v1/collections/p/stream');
  assert.equal(st.url.search, '', 'no cursor yet, no token in the URL');
  assert.equal(st.headers.Authorization, 'Bearer sec ret');
  assert.equal(st.headers.Accept, 'application/x-ndjson');
  // Live once the response's head is in, before any line.
  await until(() => s.status.state === 'live', 'live');
  assert.equal(s.status.transport, 'ndjson');
  assert.ok(!srv.calls.some((c) => c.url.pathname.endsWith('/events')), 'SSE never tried');

  // Two lines in one chunk, one line in two chunks, a ping.
  const events = [];
  v.subscribe((e) => events.push(`${e.type}@${e.version}`));
  st.send(`${JSON.stringify(reset(3, [{ id: 'a', value: 1, version: 3 }]))}\n${JSON.stringify(commit(4, [{ op: 'put', id: 'b', value: 2 }]))}\n`);
  const c5 = JSON.stringify(commit(5, [{ op: 'delete', id: 'a' }]));
  st.send(c5.slice(0, 20));
  st.send(`${c5.slice(20)}\n{"type":"ping"}\n`);
  await until(() => v.version === 5, 'commit 5');
  assert.deepEqual(events, ['reset@3', 'commit@4', 'commit@5']);
  assert.deepEqual(Object.fromEntries(v.records), { b: 2 });
  assert.equal(v.epoch, 'E');
  assert.ok(statuses.includes('ndjson/live'));
  s.close();
  assert.ok(st.signal.aborted, 'close aborts the stream');
});

test('ndjson: a dropped stream resumes from the cursor; a gap reopens at once', async (t) => {
  const srv = server();
  const s = open(t, { url: BASE, transport: 'ndjson', fetch: srv.fetch, token: () => 'tok', backoff: { base: 1, cap: 5 } });
  const v = s.collection('p');
  await until(() => srv.streams.length === 1, 'stream');
  srv.streams[0].line(reset(7, [{ id: 'x', value: 'y', version: 7 }], 'ep:1'));
  srv.streams[0].line(commit(8, [], 'ep:1'));
  await until(() => v.version === 8, 'commit 8');
  srv.streams[0].end(); // the connection drops
  await until(() => srv.streams.length === 2, 'reconnected');
  let q = srv.streams[1].url.searchParams;
  assert.equal(q.get('after'), '8');
  assert.equal(q.get('epoch'), 'ep:1');
  assert.equal(srv.streams[1].headers.Authorization, 'Bearer tok');
  // A commit past version + 1: not applied, the stream is reopened from the cursor.
  srv.streams[1].line(commit(10, [{ op: 'put', id: 'z', value: 1 }], 'ep:1'));
  await until(() => srv.streams.length === 3, 'reopened after a gap');
  assert.ok(srv.streams[1].signal.aborted);
  assert.equal(v.version, 8);
  q = srv.streams[2].url.searchParams;
  assert.equal(q.get('after'), '8');
  srv.streams[2].line(commit(9, [], 'ep:1'));
  srv.streams[2].line(commit(10, [{ op: 'put', id: 'z', value: 1 }], 'ep:1'));
  await until(() => v.version === 10, 'caught up');
  assert.equal(v.get('z'), 1);
  // Another epoch: reopened from the cursor too, where the server answers a reset.
  srv.streams[2].line(commit(11, [], 'ep:2'));
  await until(() => srv.streams.length === 4, 'reopened after an epoch change');
  srv.streams[3].line(reset(2, [], 'ep:2'));
  await until(() => v.epoch === 'ep:2', 'reset to the new epoch');
  s.close();
});

test('ndjson: an unauthorized error line reopens at once with a fresh token', async (t) => {
  const srv = server();
  let n = 0;
  const errors = [];
  const s = open(t, { url: BASE, transport: 'ndjson', fetch: srv.fetch, token: () => `tok${++n}`, backoff: { base: 60000, cap: 60000 } });
  s.on('error', (e) => errors.push(e));
  const v = s.collection('p');
  await until(() => srv.streams.length === 1, 'stream');
  assert.equal(srv.streams[0].headers.Authorization, 'Bearer tok1');
  srv.streams[0].line(reset(3));
  await until(() => v.version === 3, 'reset');
  srv.streams[0].line({ type: 'error', code: 'unauthorized', message: 'token expired; reconnect with a fresh token' });
  // Without reopening at once, the 60 s backoff would hold it back.
  await until(() => srv.streams.length === 2, 'reopened');
  assert.ok(srv.streams[0].signal.aborted);
  assert.equal(srv.streams[1].headers.Authorization, 'Bearer tok2');
  assert.equal(srv.streams[1].url.searchParams.get('after'), '3');
  assert.equal(srv.streams[1].url.searchParams.get('epoch'), 'E');
  assert.equal(errors.length, 1);
  assert.deepEqual([errors[0].code, errors[0].status], ['unauthorized', 401]);
  assert.match(errors[0].message, /token expired/);
  assert.equal(s.status.state, 'live', 'the session stays live');
  s.close();
});

test('ndjson: an unavailable error line backs off, then resumes from the cursor', async (t) => {
  t.mock.method(Math, 'random', () => 0.99); // the longest jittered delay
  const srv = server();
  const errors = [];
  const s = open(t, { url: BASE, transport: 'ndjson', fetch: srv.fetch, token: 'tok', backoff: { base: 100, cap: 1000 } });
  s.on('error', (e) => errors.push(e));
  const v = s.collection('p');
  await until(() => srv.streams.length === 1, 'stream');
  srv.streams[0].line(reset(5));
  await until(() => v.version === 5, 'reset');
  const at = Date.now();
  // Lines after the error line are not read.
  srv.streams[0].send(`${JSON.stringify({ type: 'error', code: 'unavailable', message: 'the server is shutting down; retry later' })}\n${JSON.stringify(commit(6))}\n`);
  await until(() => srv.streams.length === 2, 'reopened', 5000);
  const waited = Date.now() - at;
  assert.ok(waited >= 150, `reopened after ${waited} ms, want a backoff (about 200 ms)`);
  assert.equal(v.version, 5, 'nothing after the error line applied');
  assert.equal(srv.streams[1].url.searchParams.get('after'), '5');
  assert.deepEqual([errors[0].code, errors[0].status], ['unavailable', 503]);
  s.close();
});

test('auto: SSE, not NDJSON, without a token', async (t) => {
  for (const token of [undefined, '', () => '']) {
    const calls = [];
    const fetch = async (url, init = {}) => {
      const u = new URL(url);
      calls.push(u.pathname);
      if (u.pathname.endsWith('/version')) return json({ epoch: 'E', version: 0 });
      if (u.pathname.endsWith('/events')) return new Response(new ReadableStream({ start(c) { c.enqueue(enc.encode('retry: 1000\n\n')); } }), { headers: { 'Content-Type': 'text/event-stream' } });
      return json({}, 404);
    };
    const s = open(t, { url: BASE, token, WebSocket: FailingWS, fetch, backoff: { base: 1, cap: 5 }, collections: ['p'] });
    await until(() => s.status.state === 'live', `live (token ${typeof token})`);
    assert.equal(s.status.transport, 'sse', `token ${JSON.stringify(token)}`);
    assert.ok(!calls.some((p) => p.endsWith('/stream')));
    s.close();
  }
});

test('auto with a token: a server without the NDJSON stream falls back to long-poll', async (t) => {
  const srv = server({
    other: (u) => {
      if (u.pathname.endsWith('/version')) return json({ epoch: 'E', version: 0 });
      if (u.pathname === '/v1/collections/p') return json({ epoch: 'E', version: 1, records: [] });
      if (u.pathname.endsWith('/changes')) return new Promise(() => {});
      return json({ error: { code: 'not_found', message: 'no such endpoint' } }, 404);
    },
  });
  // The stream endpoint answers 404 (an older server).
  const fetch = async (url, init) => (new URL(url).pathname.endsWith('/stream')
    ? json({ error: { code: 'not_found', message: 'no such endpoint' } }, 404)
    : srv.fetch(url, init));
  const seen = [];
  const s = open(t, { url: BASE, token: 'tok', WebSocket: FailingWS, fetch, backoff: { base: 1, cap: 5 }, onStatus: (st) => seen.push(st.transport) });
  const v = s.collection('p');
  await v.ready;
  await until(() => s.status.state === 'live', 'live');
  assert.equal(s.status.transport, 'longpoll');
  assert.deepEqual([...new Set(seen)], ['ndjson', 'longpoll'], 'after the WebSocket tries');
  s.close();
});

test('ndjson: an answer that is not NDJSON is a transport failure', async (t) => {
  const srv = server({
    type: 'text/html',
    other: (u) => {
      if (u.pathname.endsWith('/version')) return json({ epoch: 'E', version: 0 });
      if (u.pathname === '/v1/collections/p') return json({ epoch: 'E', version: 1, records: [] });
      return new Promise(() => {}); // long-polls wait
    },
  });
  const s = open(t, { url: BASE, token: 'tok', WebSocket: FailingWS, fetch: srv.fetch, backoff: { base: 1, cap: 5 }, collections: ['p'] });
  await until(() => s.status.state === 'live', 'live');
  assert.equal(s.status.transport, 'longpoll');
  assert.equal(srv.streams.length, 2, 'two tries of the stream');
  s.close();
});
