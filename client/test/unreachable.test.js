// A server that never answers (down, or refusing this page's origin, which a
// browser reports as a bare network error): after maxSilentAttempts attempts
// the session says so once, rejects the views' ready, and keeps retrying.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ViewsyncError } from '../viewsync.js';
import { BASE, fakeWS, json, open, tick, until } from '../testing/fakes.js';

/** fetch that fails as a browser does on a CORS refusal or a server down. */
const noAnswer = async () => { throw new TypeError('Failed to fetch'); };

test('unreachable: reported once after maxSilentAttempts, ready rejects, recovery goes live', async (t) => {
  const WS = fakeWS({ fail: true });
  let up = false;
  const fetch = async (url) => (up ? json({ epoch: 'E', version: 0 }) : noAnswer());
  const errors = [];
  const s = open(t, { url: BASE, WebSocket: WS, fetch, maxSilentAttempts: 3, backoff: { base: 2, cap: 4 } });
  let triesAtError = 0;
  s.on('error', (e) => { errors.push(e); triesAtError = WS.all.length; });
  const v = s.collection('items');
  let readyErr = null;
  v.ready.catch((e) => { readyErr = e; });

  await until(() => errors.length === 1, 'the unreachable error');
  const e = errors[0];
  assert.ok(e instanceof ViewsyncError);
  assert.equal(e.code, 'unreachable');
  assert.equal(e.status, 0);
  assert.equal(triesAtError, 3, 'reported on the third silent attempt');
  assert.match(e.message, /^no answer from http:\/\/vs\.test after 3 attempts: is the server running, and if this page is on another origin, was the server started with --cors-origin /);
  await tick(1);
  assert.equal(readyErr, e, 'ready rejects with the same error');
  assert.equal(s.status.transport, 'ws', 'no fallback: every transport would fail');

  // It keeps retrying, without saying it again.
  const tries = WS.all.length;
  await until(() => WS.all.length >= tries + 4, 'more attempts');
  assert.equal(errors.length, 1, 'reported once');
  // A view opened meanwhile is told too.
  const w = s.collection('other');
  await assert.rejects(w.ready, (x) => x === e);

  // The server answers again: the session goes live and the views sync.
  up = true;
  WS.fail = false;
  await until(() => s.status.state === 'live', 'live');
  assert.equal(s.status.transport, 'ws');
  const ws = WS.all.at(-1);
  await until(() => ws.sent.filter((m) => m.type === 'subscribe').length === 2, 'subscribed');
  ws.deliver({ type: 'reset', collection: 'items', epoch: 'E', version: 3, records: [{ id: 'a', value: 1, version: 3 }] });
  assert.equal(v.synced, true);
  assert.equal(v.get('a'), 1);
  assert.equal(errors.length, 1);
});

test('unreachable: a later outage after the server answered is reported again', async (t) => {
  let up = false;
  const fetch = async (url) => {
    if (!up) return noAnswer();
    if (new URL(url).pathname === '/v1/collections/c') return json({ epoch: 'E', version: 1, records: [] });
    return json({ epoch: 'E', version: 1 }); // the version: nothing new
  };
  const errors = [];
  const s = open(t, { url: BASE, transport: 'poll', pollInterval: 5, fetch, maxSilentAttempts: 2, backoff: { base: 2, cap: 4 }, collections: ['c'] });
  s.on('error', (e) => errors.push(e));
  await until(() => errors.length === 1, 'first report');
  await assert.rejects(s.collection('c').ready, (e) => e.code === 'unreachable');
  up = true;
  await until(() => s.status.state === 'live', 'live');
  assert.equal(s.collection('c').synced, true);
  up = false;
  await until(() => errors.length === 2, 'second report');
  assert.equal(errors[1].code, 'unreachable');
  assert.match(errors[1].message, /after 2 attempts/);
});

test('unreachable: an HTTP error answer is an answer', async (t) => {
  // Every request answered 503: the session retries, reports the answers,
  // never 'unreachable'; ready stays pending.
  const WS = fakeWS({ fail: true });
  const fetch = async () => json({ error: { code: 'unavailable', message: 'busy' } }, 503);
  const errors = [];
  let tries = 0;
  const s = open(t, {
    url: BASE, WebSocket: WS, fetch, maxSilentAttempts: 2, backoff: { base: 1, cap: 2 },
    onStatus: (st) => { if (st.state === 'offline') tries++; },
  });
  s.on('error', (e) => errors.push(e));
  const v = s.collection('x');
  let settled = false;
  v.ready.then(() => { settled = true; }, () => { settled = true; });
  await until(() => tries >= 6 && WS.all.length >= 6, 'several attempts');

  // Forced long-poll, where the 503s are reported.
  const s2 = open(t, { url: BASE, transport: 'longpoll', fetch, maxSilentAttempts: 2, backoff: { base: 1, cap: 2 }, collections: ['x'] });
  s2.on('error', (e) => errors.push(e));
  await until(() => errors.filter((e) => e.code === 'unavailable').length >= 4, 'the 503s reported');
  assert.deepEqual(errors.filter((e) => e.code === 'unreachable'), []);
  await tick(1);
  assert.equal(settled, false, 'ready neither resolved nor rejected');
});

test('unreachable: maxSilentAttempts 0 never reports', async (t) => {
  const errors = [];
  let tries = 0;
  const s = open(t, {
    url: BASE, transport: 'poll', fetch: noAnswer, maxSilentAttempts: 0, backoff: { base: 1, cap: 2 }, collections: ['x'],
    onStatus: (st) => { if (st.state === 'offline') tries++; },
  });
  s.on('error', (e) => errors.push(e));
  await until(() => tries >= 8, 'attempts');
  assert.deepEqual(errors, []);
});
