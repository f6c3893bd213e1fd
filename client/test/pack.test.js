// The npm package as users get it: `npm pack` of client/, the tarball
// installed into a throw-away project, imported from Node there, and a
// sample TypeScript program that uses every public API type-checked by tsc
// against the installed package's types.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const client = fileURLToPath(new URL('../', import.meta.url));
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

// The TypeScript the client pins (client/package-lock.json), installed
// with `npm ci` when missing.
function tscPath() {
  const tsc = join(client, 'node_modules', '.bin', 'tsc');
  if (!existsSync(tsc)) run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], client);
  return tsc;
}

// The names sample.ts must use: every export of viewsync.d.ts, and every
// member of its classes and interfaces.
async function publicNames() {
  const dts = await readFile(join(client, 'viewsync.d.ts'), 'utf8');
  const exports = [...dts.matchAll(/^export (?:declare )?(?:function|class|const|interface|type) (\w+)/gm)].map((m) => m[1]);
  const code = dts.replace(/\/\*\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  const members = [...code.matchAll(/^ {2}(?:readonly )?(\$?\w+)\??(?:\(|<|:)/gm)].map((m) => m[1]);
  return [...new Set([...exports, ...members])].filter((n) => n !== 'constructor');
}

test('npm pack: the tarball installs, imports from Node and type-checks', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'viewsync-pack-'));
  t.after(() => rm(dir, { recursive: true, force: true }));

  const [packed] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', dir], client));
  const files = packed.files.map((f) => f.path).sort();
  for (const want of ['LICENSE', 'README.md', 'package.json', 'viewsync.js', 'viewsync.d.ts', 'viewsync/session.js', 'viewsync/bind.js']) {
    assert.ok(files.includes(want), `${want} is not in the tarball: ${files.join(', ')}`);
  }
  for (const f of files) {
    assert.match(f, /^(LICENSE|README\.md|package\.json|viewsync\.js|viewsync\.d\.ts|viewsync\/[a-z-]+\.js)$/, `${f} should not be published`);
  }
  assert.ok(!existsSync(join(client, 'LICENSE')), 'the LICENSE copied for packing was not removed');

  const app = join(dir, 'app');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  run('npm', ['install', '--no-audit', '--no-fund', '--offline', '--loglevel=error', join(dir, packed.filename)], app);
  const license = await readFile(join(app, 'node_modules', 'viewsync', 'LICENSE'), 'utf8');
  assert.match(license, /Apache License/);

  const names = JSON.parse(run('node', ['--input-type=module', '-e', `
    import * as v from 'viewsync';
    const e = new v.ViewsyncError('network', 'down', 0);
    console.log(JSON.stringify({ exports: Object.keys(v).sort(), code: e.code, name: e.name, connect: typeof v.connect }));
  `], app));
  assert.deepEqual(names.exports, ['Session', 'View', 'ViewsyncError', 'bindTable', 'connect']);
  assert.deepEqual([names.code, names.name, names.connect], ['network', 'ViewsyncError', 'function']);

  const sample = await readFile(join(client, 'testing', 'sample.ts'), 'utf8');
  const sampleCode = sample.replace(/\/\/.*$/gm, '');
  const uses = (n) => new RegExp(`(^|[^\\w$])${n.replace(/\$/g, '\\$')}(?![\\w$])`).test(sampleCode);
  const unused = (await publicNames()).filter((n) => !uses(n));
  assert.deepEqual(unused, [], 'sample.ts does not use every public name');
  await copyFile(join(client, 'testing', 'sample.ts'), join(app, 'sample.ts'));
  await writeFile(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true, noEmit: true, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext',
      lib: ['ES2023', 'DOM', 'DOM.Iterable'], types: [], skipLibCheck: false,
    },
    files: ['sample.ts'],
  }));
  try {
    run(tscPath(), ['-p', app], app);
  } catch (e) {
    assert.fail(`tsc on sample.ts against the installed package:\n${e.stdout}${e.stderr}`);
  }
});
