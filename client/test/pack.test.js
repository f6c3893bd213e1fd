// The npm package as users get it: `npm pack` of client/, the tarball
// installed into a throw-away project, imported from Node there (its
// subpath exports viewsync/react, viewsync/vue and viewsync/svelte too), and
// sample TypeScript programs that use every public API type-checked by tsc
// against the installed package's types (with React's and Vue's, from
// client/node_modules).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const client = fileURLToPath(new URL('../', import.meta.url));
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

// The devDependencies the client pins (client/package-lock.json):
// TypeScript, and React's and Vue's packages and types; installed with
// `npm ci` when missing.
const devDeps = ['typescript', 'react', '@types/react', 'vue'];
function devInstalled() {
  if (!devDeps.every((d) => existsSync(join(client, 'node_modules', d, 'package.json')))) {
    run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], client);
  }
  return join(client, 'node_modules', '.bin', 'tsc');
}

// The names a sample must use: every export of a .d.ts, and every member
// of its classes and interfaces.
async function publicNames(file) {
  const dts = await readFile(join(client, file), 'utf8');
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
  const bindings = ['react.js', 'react.d.ts', 'vue.js', 'vue.d.ts', 'svelte.js', 'svelte.d.ts'];
  for (const want of ['LICENSE', 'README.md', 'package.json', 'viewsync.js', 'viewsync.d.ts', 'viewsync/session.js', 'viewsync/bind.js', 'viewsync/live.js', ...bindings]) {
    assert.ok(files.includes(want), `${want} is not in the tarball: ${files.join(', ')}`);
  }
  for (const f of files) {
    assert.match(f, /^(LICENSE|README\.md|package\.json|(viewsync|react|vue|svelte)\.(js|d\.ts)|viewsync\/[a-z-]+\.js)$/, `${f} should not be published`);
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
  assert.deepEqual(names.exports, ['Presence', 'Session', 'View', 'ViewsyncError', 'bindTable', 'connect']);
  assert.deepEqual([names.code, names.name, names.connect], ['network', 'ViewsyncError', 'function']);

  // React and Vue are optional peer dependencies: the project has them
  // (linked from client/node_modules), npm did not install them.
  const tsc = devInstalled();
  await mkdir(join(app, 'node_modules', '@types'), { recursive: true });
  for (const d of ['react', '@types/react', 'vue']) {
    assert.ok(!existsSync(join(app, 'node_modules', d)), `npm installed the peer dependency ${d}`);
    await symlink(join(client, 'node_modules', d), join(app, 'node_modules', d), 'dir');
  }
  const subpaths = JSON.parse(run('node', ['--input-type=module', '-e', `
    const out = {};
    for (const p of ['viewsync/react', 'viewsync/vue', 'viewsync/svelte']) out[p] = Object.keys(await import(p)).sort();
    console.log(JSON.stringify(out));
  `], app));
  assert.deepEqual(subpaths, {
    'viewsync/react': ['useSession', 'useView'],
    'viewsync/vue': ['useSession', 'useView'],
    'viewsync/svelte': ['statusStore', 'toStore'],
  });

  // sample.ts uses the entry's names, sample-bindings.ts the subpaths' (and
  // ViewState, the entry's type that only the bindings hand out).
  const samples = ['sample.ts', 'sample-bindings.ts'];
  let code = '';
  for (const sample of samples) {
    code += (await readFile(join(client, 'testing', sample), 'utf8')).replace(/\/\/.*$/gm, '');
    await copyFile(join(client, 'testing', sample), join(app, sample));
  }
  const uses = (n) => new RegExp(`(^|[^\\w$])${n.replace(/\$/g, '\\$')}(?![\\w$])`).test(code);
  const dts = ['viewsync.d.ts', 'react.d.ts', 'vue.d.ts', 'svelte.d.ts'];
  const unused = (await Promise.all(dts.map(publicNames))).flat().filter((n) => !uses(n));
  assert.deepEqual(unused, [], 'the samples do not use every public name');
  await writeFile(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true, noEmit: true, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext',
      lib: ['ES2023', 'DOM', 'DOM.Iterable'], types: [], skipLibCheck: false,
    },
    files: samples,
  }));
  try {
    run(tsc, ['-p', app], app);
  } catch (e) {
    assert.fail(`tsc on the samples against the installed package:\n${e.stdout}${e.stderr}`);
  }
});
