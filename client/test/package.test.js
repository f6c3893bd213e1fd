// The published shape of the client: the package's entry (through its
// "exports", as a dependent imports it) exports what viewsync.d.ts declares,
// and every module of viewsync/ is in the package's files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';

const dir = new URL('../', import.meta.url);

test('the package entry exports what viewsync.d.ts declares', async () => {
  const entry = await import('viewsync'); // self-reference: resolved through package.json "exports"
  const dts = await readFile(new URL('viewsync.d.ts', dir), 'utf8');
  const declared = [...dts.matchAll(/^export (?:declare )?(?:function|class|const) (\w+)/gm)].map((m) => m[1]);
  assert.deepEqual(Object.keys(entry).sort(), [...new Set(declared)].sort());
  assert.equal(typeof entry.connect, 'function');
});

test('package.json publishes every module', async () => {
  const pkg = JSON.parse(await readFile(new URL('package.json', dir), 'utf8'));
  const files = new Set(pkg.files);
  assert.ok(files.has('viewsync.js') && files.has('viewsync.d.ts'));
  const modules = (await readdir(new URL('viewsync/', dir))).filter((f) => f.endsWith('.js'));
  assert.ok(modules.length > 5);
  for (const m of modules) assert.ok(files.has('viewsync/') || files.has(`viewsync/${m}`), `viewsync/${m} not in "files"`);
  assert.equal(pkg.exports['.'].default, './viewsync.js');
  assert.equal(pkg.exports['.'].types, './viewsync.d.ts');
});
