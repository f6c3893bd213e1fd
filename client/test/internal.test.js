// Unit tests of the pure parts of the client's modules: run with `node --test client/test/`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ViewsyncError, errorFrom } from '../viewsync/errors.js';
import { getPath, jsonEqual, mergePatch, setPath } from '../viewsync/json.js';
import { SSEParser } from '../viewsync/sse.js';
import { applyToState, changesMessages, newState } from '../viewsync/state.js';
import { backoff, encodeId, isDotId, parseCursor } from '../viewsync/util.js';
import { preconditions } from '../viewsync/view.js';

function parseAll(chunks) {
  const events = [];
  const p = new SSEParser((e) => events.push(e));
  for (const c of chunks) p.push(c);
  return { events, p };
}

test('SSE: events, ids, comments; a retry hint is no event', () => {
  const { events, p } = parseAll([
    'retry: 2000\n\n',
    ': ping\n\n',
    'id: ep:1\nevent: reset\ndata: {"a":1}\n\n',
    'id: ep:2\nevent: commit\ndata: {"version":2}\n\n',
  ]);
  assert.equal(p.lastEventId, 'ep:2');
  assert.deepEqual(events, [
    { type: 'reset', data: '{"a":1}', id: 'ep:1' },
    { type: 'commit', data: '{"version":2}', id: 'ep:2' },
  ]);
});

test('SSE: any split of the stream gives the same events', () => {
  const text = '\ufeffretry: 10\r\n\r\nid: e:1\r\nevent: commit\r\ndata: x\r\ndata:y\r\n\r\n: c\rid: e:2\revent: reset\rdata: z\r\rdata\n\n';
  const whole = parseAll([text]).events;
  assert.deepEqual(whole, [
    { type: 'commit', data: 'x\ny', id: 'e:1' },
    { type: 'reset', data: 'z', id: 'e:2' },
    { type: 'message', data: '', id: 'e:2' },
  ]);
  for (let i = 0; i <= text.length; i++) {
    for (const j of [i, Math.min(text.length, i + 1), Math.min(text.length, i + 3)]) {
      const got = parseAll([text.slice(0, i), text.slice(i, j), text.slice(j)]).events;
      assert.deepEqual(got, whole, `split at ${i},${j}`);
    }
  }
  // One character at a time, too.
  assert.deepEqual(parseAll([...text]).events, whole);
});

test('SSE: field rules of the standard', () => {
  const { events } = parseAll([
    'event: a\n\n', // no data: not dispatched, type reset
    'data:  two spaces\n\n',
    'data: x\nid: bad\0id\nretry: 1x\nunknown: y\n\n',
    'data: last without blank line',
  ]);
  assert.deepEqual(events, [
    { type: 'message', data: ' two spaces', id: '' },
    { type: 'message', data: 'x', id: '' },
  ]);
});

test('backoff: full jitter within [0, min(cap, base·2^n))', () => {
  for (let n = 0; n < 40; n++) {
    const ceil = Math.min(10000, 250 * 2 ** n);
    assert.equal(backoff(n, 250, 10000, () => 0), 0);
    const hi = backoff(n, 250, 10000, () => 0.999999);
    assert.ok(hi < ceil && hi >= ceil - 1, `n=${n} hi=${hi} ceil=${ceil}`);
    for (let k = 0; k < 50; k++) {
      const d = backoff(n);
      assert.ok(d >= 0 && d < ceil, `n=${n} d=${d}`);
    }
  }
  assert.equal(backoff(3, 250, 10000, () => 0.5), 1000);
  assert.equal(backoff(100, 250, 10000, () => 0.5), 5000);
  // Spread: not all the same.
  const set = new Set(Array.from({ length: 50 }, () => backoff(5)));
  assert.ok(set.size > 10);
});

test('encodeId: one path segment, dots encoded', () => {
  assert.equal(encodeId('abc'), 'abc');
  assert.equal(encodeId('a.b'), 'a%2Eb');
  assert.equal(encodeId('..'), '%2E%2E');
  assert.equal(encodeId('a/b'), 'a%2Fb');
  assert.equal(encodeId('../x'), '%2E%2E%2Fx');
  assert.equal(encodeId('ü ?#%'), '%C3%BC%20%3F%23%25');
  for (const id of ['a.b', 'x/./y', '%2E', 'ü', '?&=#']) {
    const u = new URL(`http://h/r/${encodeId(id)}`);
    assert.equal(decodeURIComponent(u.pathname.slice(3)), id, id);
  }
  assert.ok(isDotId('.') && isDotId('..') && !isDotId('...') && !isDotId('a.'));
});

test('parseCursor', () => {
  assert.deepEqual(parseCursor('abc:12'), { epoch: 'abc', version: 12 });
  assert.deepEqual(parseCursor(':0'), { epoch: '', version: 0 });
  assert.equal(parseCursor('abc'), null);
  assert.equal(parseCursor('abc:x'), null);
  assert.equal(parseCursor(undefined), null);
});

function synced(records = [], version = 0, epoch = 'e1') {
  const st = newState();
  applyToState(st, { type: 'reset', epoch, version, records });
  return st;
}

test('apply: reset replaces the state and reports what changed', () => {
  const st = synced([{ id: 'a', value: 1, version: 1 }, { id: 'b', value: 2, version: 2 }], 2);
  const records = st.records; // kept in place
  const r = applyToState(st, { type: 'reset', epoch: 'e1', version: 5, records: [
    { id: 'b', value: 2, version: 2 }, { id: 'c', value: 3, version: 5 },
  ] });
  assert.equal(r.status, 'applied');
  assert.equal(st.records, records);
  assert.deepEqual([...st.records], [['b', 2], ['c', 3]]);
  assert.deepEqual(r.event.added, ['c']);
  assert.deepEqual(r.event.updated, []);
  assert.deepEqual(r.event.removed, ['a']);
  assert.equal(st.version, 5);
  // Another epoch: every surviving record counts as updated.
  const r2 = applyToState(st, { type: 'reset', epoch: 'e2', version: 1, records: [{ id: 'b', value: 2, version: 1 }] });
  assert.deepEqual(r2.event.updated, ['b']);
  assert.deepEqual(r2.event.removed, ['c']);
  assert.equal(st.epoch, 'e2');
  assert.equal(st.version, 1);
});

test('apply: commits in order, exactly once; gaps detected', () => {
  const st = synced([], 3);
  const c = (version, ops, epoch = 'e1') => ({ type: 'commit', epoch, version, ops });
  assert.equal(applyToState(st, c(3, [{ op: 'put', id: 'x', value: 1 }])).status, 'stale');
  assert.equal(applyToState(st, c(2, [])).status, 'stale');
  assert.equal(applyToState(st, c(5, [])).status, 'gap');
  assert.equal(st.version, 3);
  let r = applyToState(st, c(4, [{ op: 'put', id: 'x', value: 1 }, { op: 'put', id: 'y', value: 2 }]));
  assert.equal(r.status, 'applied');
  assert.deepEqual(r.event.added, ['x', 'y']);
  assert.equal(st.versions.get('x'), 4);
  r = applyToState(st, c(5, [{ op: 'put', id: 'x', value: 9 }, { op: 'delete', id: 'y' }, { op: 'put', id: 'z', value: 0 }, { op: 'delete', id: 'z' }]));
  assert.deepEqual(r.event.updated, ['x']);
  assert.deepEqual(r.event.removed, ['y']);
  assert.deepEqual(r.event.added, []);
  assert.deepEqual(r.event.changed, ['x', 'y']);
  assert.equal(st.records.get('x'), 9);
  assert.equal(applyToState(st, c(5, [{ op: 'put', id: 'x', value: 1 }])).status, 'stale');
  assert.equal(st.records.get('x'), 9);
  assert.equal(applyToState(st, c(6, [], 'other')).status, 'epoch');
  assert.equal(st.version, 5);
  // A commit without an epoch (SSE data) is judged by version alone.
  assert.equal(applyToState(st, { type: 'commit', version: 6, ops: [] }).status, 'applied');
});

test('apply: nothing but a reset applies before the first sync', () => {
  const st = newState();
  assert.equal(applyToState(st, { type: 'commit', epoch: 'e', version: 1, ops: [] }).status, 'gap');
  assert.equal(applyToState(st, { type: 'catchup', epoch: 'e', version: 1, records: [], deleted: [] }).status, 'gap');
  assert.equal(st.epoch, null);
});

test('apply: catch-up upserts records and drops deleted ids', () => {
  const st = synced([{ id: 'a', value: 1, version: 1 }, { id: 'b', value: 2, version: 2 }, { id: 'c', value: 3, version: 3 }], 3);
  assert.equal(applyToState(st, { type: 'catchup', epoch: 'e1', version: 3, records: [], deleted: [] }).status, 'stale');
  const r = applyToState(st, { type: 'catchup', epoch: 'e1', version: 9, compacted: true,
    records: [{ id: 'b', value: 20, version: 7 }, { id: 'd', value: 4, version: 9 }], deleted: ['a', 'zz'] });
  assert.equal(r.status, 'applied');
  assert.deepEqual(r.event.updated, ['b']);
  assert.deepEqual(r.event.added, ['d']);
  assert.deepEqual(r.event.removed, ['a']);
  assert.deepEqual(Object.fromEntries(st.records), { b: 20, c: 3, d: 4 });
  assert.equal(st.versions.get('b'), 7);
  assert.equal(st.version, 9);
  assert.equal(applyToState(st, { type: 'catchup', epoch: 'e0', version: 10, records: [], deleted: [] }).status, 'epoch');
  // The next commit continues from the catch-up.
  assert.equal(applyToState(st, { type: 'commit', epoch: 'e1', version: 10, ops: [] }).status, 'applied');
});

test('apply: a randomized history reaches the same state however it is delivered', () => {
  let seed = 42;
  const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
  const commits = [];
  const truth = new Map();
  for (let v = 1; v <= 200; v++) {
    const ops = [];
    for (let k = 0; k <= rnd(3); k++) {
      const id = `r${rnd(20)}`;
      if (rnd(4) === 0) { ops.push({ op: 'delete', id }); truth.delete(id); } else { ops.push({ op: 'put', id, value: v }); truth.set(id, v); }
    }
    commits.push({ type: 'commit', epoch: 'e1', version: v, ops });
  }
  // Delivered with duplicates, re-deliveries and out-of-order gaps that
  // are refused and then resent, as a reconnecting transport would.
  const st = synced([], 0);
  let next = 0;
  while (next < commits.length) {
    const pick = Math.min(commits.length - 1, Math.max(0, next - 2 + rnd(5)));
    const r = applyToState(st, commits[pick]);
    if (pick < next) assert.equal(r.status, 'stale');
    else if (pick > next) assert.equal(r.status, 'gap');
    else { assert.equal(r.status, 'applied'); next++; }
  }
  assert.deepEqual(Object.fromEntries(st.records), Object.fromEntries(truth));
  assert.equal(st.version, 200);
});

test('changesMessages: commits, catch-up, reset and snapshot bodies', () => {
  assert.deepEqual(changesMessages({ epoch: 'e', version: 3, commits: [{ version: 2, ops: [] }, { version: 3, at: 't', ops: [] }] }),
    [{ type: 'commit', epoch: 'e', version: 2, at: undefined, ops: [] }, { type: 'commit', epoch: 'e', version: 3, at: 't', ops: [] }]);
  assert.deepEqual(changesMessages({ epoch: 'e', version: 3, commits: [] }), []);
  assert.equal(changesMessages({ epoch: 'e', version: 3, compacted: true, records: [], deleted: ['x'] })[0].type, 'catchup');
  assert.equal(changesMessages({ epoch: 'e', version: 3, reset: true, records: [] })[0].type, 'reset');
  assert.equal(changesMessages({ collection: 'c', epoch: 'e', version: 3, records: [] })[0].type, 'reset');
  assert.throws(() => changesMessages(null), ViewsyncError);
});

test('mergePatch follows RFC 7396', () => {
  assert.deepEqual(mergePatch({ a: 'b' }, { a: 'c' }), { a: 'c' });
  assert.deepEqual(mergePatch({ a: 'b' }, { b: 'c' }), { a: 'b', b: 'c' });
  assert.deepEqual(mergePatch({ a: 'b' }, { a: null }), {});
  assert.deepEqual(mergePatch({ a: 'b', b: 'c' }, { a: null }), { b: 'c' });
  assert.deepEqual(mergePatch({ a: ['b'] }, { a: 'c' }), { a: 'c' });
  assert.deepEqual(mergePatch({ a: 'c' }, { a: ['b'] }), { a: ['b'] });
  assert.deepEqual(mergePatch({ a: { b: 'c' } }, { a: { b: 'd', c: null } }), { a: { b: 'd' } });
  assert.deepEqual(mergePatch({ a: [{ b: 'c' }] }, { a: [1] }), { a: [1] });
  assert.deepEqual(mergePatch(['a', 'b'], ['c', 'd']), ['c', 'd']);
  assert.deepEqual(mergePatch({ a: 'b' }, ['c']), ['c']);
  assert.equal(mergePatch({ a: 'foo' }, null), null);
  assert.equal(mergePatch({ a: 'foo' }, 'bar'), 'bar');
  assert.deepEqual(mergePatch({ e: null }, { a: 1 }), { e: null, a: 1 });
  assert.deepEqual(mergePatch([1, 2], { a: 'b', c: null }), { a: 'b' });
  assert.deepEqual(mergePatch({}, { a: { bb: { ccc: null } } }), { a: { bb: {} } });
  const t = { a: { b: 1 } };
  mergePatch(t, { a: { b: 2 } });
  assert.deepEqual(t, { a: { b: 1 } }, 'target untouched');
});

test('jsonEqual, getPath, setPath', () => {
  assert.ok(jsonEqual({ a: [1, { b: null }] }, { a: [1, { b: null }] }));
  assert.ok(!jsonEqual({ a: 1 }, { a: 1, b: undefined }));
  assert.ok(!jsonEqual([1], { 0: 1 }));
  assert.ok(!jsonEqual(null, {}));
  assert.ok(!jsonEqual(1, '1'));
  assert.equal(getPath({ a: { b: 2 } }, 'a.b'), 2);
  assert.equal(getPath({ a: 1 }, 'a.b'), undefined);
  const v = { a: { b: 1, c: 2 }, d: 3 };
  assert.deepEqual(setPath(v, 'a.b', 9), { a: { b: 9, c: 2 }, d: 3 });
  assert.deepEqual(v, { a: { b: 1, c: 2 }, d: 3 }, 'copy on write');
  assert.deepEqual(setPath(null, 'x.y', 1), { x: { y: 1 } });
});

test('errorFrom reads the contract error body, or falls back on the status', async () => {
  const res = (status, body) => ({ status, json: async () => (body === undefined ? Promise.reject(new Error('no')) : body) });
  let e = await errorFrom(res(412, { error: { code: 'precondition_failed', message: 'record x is at 3' } }), 'PUT x');
  assert.ok(e instanceof ViewsyncError);
  assert.deepEqual([e.code, e.status, e.message], ['precondition_failed', 412, 'record x is at 3']);
  e = await errorFrom(res(502), 'POST c');
  assert.deepEqual([e.code, e.status], ['bad_gateway', 502]);
  e = await errorFrom(res(418, '<html>'), 'GET');
  assert.deepEqual([e.code, e.status], ['bad_request', 418]);
  e = await errorFrom(res(599), 'GET');
  assert.equal(e.code, 'internal');
});

test('preconditions map ifVersion to headers', () => {
  assert.deepEqual(preconditions(undefined), {});
  assert.deepEqual(preconditions(0), { 'If-None-Match': '*' });
  assert.deepEqual(preconditions(12), { 'If-Match': '"12"' });
});

test('ViewsyncError carries code, status and message', () => {
  const e = new ViewsyncError('not_found', 'no such record');
  assert.ok(e instanceof Error);
  assert.equal(e.status, 404);
  assert.equal(e.name, 'ViewsyncError');
  assert.equal(new ViewsyncError('network', 'down', 0).status, 0);
});
