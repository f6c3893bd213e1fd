// live-check.mjs drives viewsync.js against a running server, over each
// transport, from Node (18+; 20 needs --experimental-websocket for the
// WebSocket transport):
//
//   node --experimental-websocket client/scripts/live-check.mjs http://127.0.0.1:8080 [ws sse longpoll poll]
//
// For every transport it opens two sessions on a fresh collection, writes
// through one and waits until the other shows it, checks preconditions,
// awkward ids and event order, and runs the "discount" call when the server
// has it. It prints "N passed, M failed" and exits non-zero on a failure.
import { connect } from '../viewsync.js';

const base = process.argv[2] || 'http://127.0.0.1:8080';
const kinds = process.argv.slice(3).length ? process.argv.slice(3) : ['ws', 'sse', 'longpoll', 'poll'];
let passed = 0;
let failed = 0;

function check(ok, what) {
  if (ok) passed++;
  else { failed++; console.log(`  FAIL ${what}`); }
}

function within(ms, p, what) {
  return Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`timeout: ${what}`)), ms))]);
}

async function run(kind) {
  console.log(`== ${kind}`);
  const name = `live-${kind}-${Date.now().toString(36)}`;
  const a = connect({ url: base, transport: kind, pollInterval: 300 });
  const b = connect({ url: base, transport: kind, pollInterval: 300 });
  try {
    const va = a.collection(name);
    const vb = b.collection(name);
    await within(10000, Promise.all([va.ready, vb.ready]), 'ready');
    check(a.status.state === 'live' && a.status.transport === kind, `status live over ${kind}: ${JSON.stringify(a.status)}`);

    const seen = [];
    vb.subscribe((ev) => seen.push(ev));

    const v1 = await va.put('x', { n: 1 });
    await within(5000, vb.waitFor(v1), 'b sees put');
    check(vb.get('x')?.n === 1, 'b has x.n = 1');

    const v2 = await vb.patch('x', { m: 2 }, { ifVersion: v1 });
    await within(5000, va.waitFor(v2), 'a sees patch');
    check(va.get('x')?.m === 2 && va.get('x')?.n === 1, 'a has merged x');
    check(va.record('x')?.version === v2, 'record version is the commit version');

    try {
      await va.put('x', { n: 9 }, { ifVersion: v1 });
      check(false, 'stale ifVersion rejects');
    } catch (e) {
      check(e.code === 'precondition_failed' && e.status === 412, `412 precondition_failed, got ${e.code}/${e.status}`);
    }
    try {
      await va.put('x', {}, { ifVersion: 0 });
      check(false, 'create-only on an existing record rejects');
    } catch (e) {
      check(e.code === 'precondition_failed', `create-only: ${e.code}`);
    }

    const odd = ['.', '..', 'a/b', 'a.b', '../etc', 'ü ñ %2E', '?#&'];
    let last = 0;
    for (const id of odd) last = await va.put(id, { id });
    await within(5000, vb.waitFor(last), 'b sees odd ids');
    for (const id of odd) check(vb.get(id)?.id === id, `odd id ${JSON.stringify(id)} round-trips`);
    const vp = await va.patch('.', { p: 1 });
    await within(5000, vb.waitFor(vp), 'patch of "."');
    check(vb.get('.')?.p === 1 && vb.get('.')?.id === '.', 'patch of "." merged');
    const vd = await va.delete('..');
    await within(5000, vb.waitFor(vd), 'delete of ".."');
    check(!vb.records.has('..'), 'delete of ".."');

    const vc = await vb.commit([{ op: 'put', id: 'c1', value: 1 }, { op: 'delete', id: 'x' }], { if: { x: v2 } });
    await within(5000, va.waitFor(vc), 'a sees commit');
    check(va.get('c1') === 1 && !va.records.has('x'), 'commit applied whole');

    await within(5000, vb.waitFor(vc), 'b sees its own commit');
    const versions = seen.filter((e) => e.type === 'commit').map((e) => e.version);
    check(versions.every((v, i) => i === 0 || v === versions[i - 1] + 1), `commits in order without gaps: ${versions}`);
    check(vb.version === vc, `b at ${vc}, is at ${vb.version}`);

    try {
      const products = a.collection('products');
      await within(10000, products.ready, 'products ready');
      await va.put('seed', { name: 'seed', price: 10 });
      const r = await within(10000, b.call('discount', { percent: 10 }, { tag: 7 }), 'call');
      check(r.context.tag === 7, 'call hands back the context');
      check(typeof r.result.updated === 'number', `call result ${JSON.stringify(r.result)}`);
      const vbp = b._views.get('products');
      check(!vbp, 'temporary view closed after the call');
    } catch (e) {
      if (e.code === 'not_found') console.log('  (no discount call on this server)');
      else throw e;
    }
  } catch (e) {
    failed++;
    console.log(`  FAIL ${e.stack || e}`);
  } finally {
    a.close();
    b.close();
  }
}

for (const k of kinds) await run(k);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
