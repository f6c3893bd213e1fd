package browser

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The apps of TestFrameworkBindings, one per binding of the npm package:
// each imports 'viewsync' and its binding by name, as an application
// does, and is bundled by esbuild from client/'s node_modules. Each shows
// the whole products collection and a view whose filter the server refuses
// with the same elements: the connection's state and transport, the
// view's version, whether it synced, its error, and one li per record
// (data-key = id, text "name: price"), all set as text.
var bindingApps = map[string]string{
	"react": `
import { createElement as h, StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { connect } from 'viewsync';
import { useSession, useView } from 'viewsync/react';

const session = window.session = connect({ url: new URLSearchParams(location.search).get('vs') });
const products = session.collection('products');
const refused = session.collection('products', { where: { price: { $regex: 'x' } } });

function App() {
  const { records, version, synced, status, error } = useView(products);
  const bad = useView(refused);
  const { transport } = useSession(session);
  return h('main', null,
    h('p', { 'data-testid': 'status' }, status),
    h('p', { 'data-testid': 'transport' }, transport),
    h('p', { 'data-testid': 'version' }, String(version)),
    h('p', { 'data-testid': 'synced' }, String(synced)),
    h('p', { 'data-testid': 'error' }, error ? error.code : ''),
    h('ul', { 'data-testid': 'list' }, records.map((r) => h('li', { key: r.id, 'data-key': r.id }, r.value.name + ': ' + r.value.price))),
    h('p', { 'data-testid': 'bad-error' }, bad.error ? bad.error.code : ''));
}
createRoot(document.getElementById('app')).render(h(StrictMode, null, h(App)));
`,
	"vue": `
import { createApp, h } from 'vue';
import { connect } from 'viewsync';
import { useSession, useView } from 'viewsync/vue';

const session = window.session = connect({ url: new URLSearchParams(location.search).get('vs') });
const products = session.collection('products');
const refused = session.collection('products', { where: { price: { $regex: 'x' } } });

createApp({
  setup() {
    const { records, version, synced, status, error } = useView(products);
    const bad = useView(refused);
    const conn = useSession(session);
    return () => h('main', [
      h('p', { 'data-testid': 'status' }, status.value),
      h('p', { 'data-testid': 'transport' }, conn.value.transport),
      h('p', { 'data-testid': 'version' }, String(version.value)),
      h('p', { 'data-testid': 'synced' }, String(synced.value)),
      h('p', { 'data-testid': 'error' }, error.value ? error.value.code : ''),
      h('ul', { 'data-testid': 'list' }, records.value.map((r) => h('li', { key: r.id, 'data-key': r.id }, r.value.name + ': ' + r.value.price))),
      h('p', { 'data-testid': 'bad-error' }, bad.error.value ? bad.error.value.code : ''),
    ]);
  },
}).mount('#app');
`,
	// A plain script subscribed to the stores, as a Svelte component's
	// $products would be.
	"svelte": `
import { connect } from 'viewsync';
import { statusStore, toStore } from 'viewsync/svelte';

const session = window.session = connect({ url: new URLSearchParams(location.search).get('vs') });
const products = toStore(session.collection('products'));
const refused = toStore(session.collection('products', { where: { price: { $regex: 'x' } } }));

const app = document.getElementById('app');
const el = (tag, testid) => {
  const e = document.createElement(tag);
  e.dataset.testid = testid;
  app.append(e);
  return e;
};
const status = el('p', 'status');
const transport = el('p', 'transport');
const version = el('p', 'version');
const synced = el('p', 'synced');
const error = el('p', 'error');
const list = el('ul', 'list');
const badError = el('p', 'bad-error');

// The store calls at once: the elements are filled before anything arrives.
window.calledAtOnce = false;
products.subscribe((s) => {
  window.calledAtOnce = true;
  status.textContent = s.status;
  version.textContent = String(s.version);
  synced.textContent = String(s.synced);
  error.textContent = s.error ? s.error.code : '';
  list.replaceChildren(...s.records.map((r) => {
    const li = document.createElement('li');
    li.dataset.key = r.id;
    li.textContent = r.value.name + ': ' + r.value.price;
    return li;
  }));
});
statusStore(session).subscribe((st) => { transport.textContent = st.transport; });
refused.subscribe((s) => { badError.textContent = s.error ? s.error.code : ''; });
`,
}

// bindingPage is the page of an app: ?app=react|vue|svelte, and the
// viewsync server's URL in ?vs=.
const bindingPage = `<!doctype html>
<meta charset="utf-8">
<title>bindings</title>
<div id="app"></div>
<script type="module">
const app = new URLSearchParams(location.search).get('app');
const s = document.createElement('script');
s.type = 'module';
s.src = '/' + encodeURIComponent(app) + '.js';
document.body.append(s);
</script>
`

// bindingStateJS is a JavaScript expression: what an app shows.
const bindingStateJS = `((q) => ({
  status: q('status'), transport: q('transport'), version: q('version'), synced: q('synced'),
  error: q('error'), bad: q('bad-error'),
  items: [...document.querySelectorAll('[data-testid="list"] > li')].map((li) => li.dataset.key + '=' + li.textContent).join('|'),
}))((id) => document.querySelector('[data-testid="' + id + '"]')?.textContent ?? null)`

// TestFrameworkBindings: an app of each binding of the npm package —
// viewsync/react's useView and useSession, viewsync/vue's composables,
// viewsync/svelte's stores subscribed from a plain script — bundled with
// esbuild and served from another origin, shows the products, and follows
// writes made through the server's API (an added, an edited and a deleted
// record) without a reload; shows the connection's state as it goes
// offline when the server stops and live again when it is back (and what
// was written meanwhile); and shows the bad_request of a view whose filter
// the server refuses, while the whole collection's view shows none.
func TestFrameworkBindings(t *testing.T) {
	dist := bundleBindingApps(t)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, bindingPage)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, "/")
		if _, ok := bindingApps[strings.TrimSuffix(name, ".js")]; !ok || !strings.HasSuffix(name, ".js") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		http.ServeFile(w, r, filepath.Join(dist, name))
	}))
	t.Cleanup(site.Close)

	data := t.TempDir()
	addr := freeAddr(t)
	srv := startServer(t, data, addr, "--cors-origin", site.URL)
	srv.put("p-1", product{Name: "Lamp", Price: 30})
	srv.put("p-2", product{Name: "Chair", Price: 120})

	b := newBrowser(t)
	names := []string{"react", "vue", "svelte"}
	pages := map[string]*page{}
	for _, name := range names {
		p := b.open(t, name, site.URL+"/?app="+name+"&vs="+srv.url)
		pages[name] = p
	}
	shows := func(what, cond string) {
		t.Helper()
		for _, name := range names {
			pages[name].waitFor(what, `((s) => `+cond+`)(`+bindingStateJS+`)`, changeTimeout, nil)
		}
	}

	for _, name := range names {
		pages[name].waitFor("live", `((s) => s.status === 'live' && s.transport === 'ws')(`+bindingStateJS+`)`, liveTimeout, nil)
		pages[name].eval("marking the document", `window.__noReload = 1`, nil)
	}
	shows("the products", `s.synced === 'true' && s.items === 'p-1=Lamp: 30|p-2=Chair: 120' && s.error === ''`)
	shows("the refused filter's error", `s.bad === 'bad_request'`)
	var atOnce bool
	pages["svelte"].eval("the store's first call", `window.calledAtOnce`, &atOnce)
	if !atOnce {
		t.Errorf("svelte: the store did not call its subscriber")
	}

	v := srv.put("p-3", product{Name: "Rug", Price: 80})
	shows("an added record", `s.items === 'p-1=Lamp: 30|p-2=Chair: 120|p-3=Rug: 80'`)
	srv.patch("p-1", map[string]any{"name": "Desk lamp", "price": 25})
	shows("an edited record", `s.items === 'p-1=Desk lamp: 25|p-2=Chair: 120|p-3=Rug: 80'`)
	srv.do(http.MethodDelete, productsPath+"/records/p-2", "", nil, nil)
	shows("a deleted record", `s.items === 'p-1=Desk lamp: 25|p-3=Rug: 80' && Number(s.version) > `+strconv.FormatUint(v, 10))

	if took, err := srv.stop(); err != nil {
		t.Fatalf("stopping the server: %v (after %v)", err, took)
	}
	shows("not live while the server is down", `s.status === 'offline' || s.status === 'connecting'`)
	srv = startServer(t, data, addr, "--cors-origin", site.URL)
	srv.put("p-4", product{Name: "Vase", Price: 12})
	for _, name := range names {
		// Reconnects back off up to 10s (jittered); allow for that.
		pages[name].waitFor("live again", `((s) => s.status === 'live')(`+bindingStateJS+`)`, 2*changeTimeout, nil)
	}
	shows("what was written while down", `s.items === 'p-1=Desk lamp: 25|p-3=Rug: 80|p-4=Vase: 12' && s.error === '' && s.bad === 'bad_request'`)
	for _, name := range names {
		var marker int
		pages[name].eval("reading the marker", `window.__noReload ?? 0`, &marker)
		if marker != 1 {
			t.Errorf("page %s: window.__noReload = %d: the page was reloaded", name, marker)
		}
	}
}

// bundleBindingApps writes the apps into a directory, bundles each with
// client/'s esbuild (running npm ci in client/ first when its
// devDependencies are not installed) and returns the directory of the
// bundles (react.js, vue.js, svelte.js). 'viewsync' resolves to client/
// itself, through its package.json "exports", and React and Vue to
// client/node_modules.
func bundleBindingApps(t *testing.T) string {
	t.Helper()
	client := filepath.Join(moduleRoot, "client")
	modules := filepath.Join(client, "node_modules")
	esbuild := filepath.Join(modules, ".bin", "esbuild")
	installed := true
	for _, p := range []string{esbuild, filepath.Join(modules, "react-dom", "package.json"), filepath.Join(modules, "vue", "package.json")} {
		if _, err := os.Stat(p); err != nil {
			installed = false
		}
	}
	if !installed {
		npm := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		npm.Dir = client
		if out, err := npm.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in client/: %v\n%s", err, out)
		}
	}

	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	paths := filepath.Join(dir, "paths") // holds viewsync → client/
	dist := filepath.Join(dir, "dist")
	for _, d := range []string{src, paths, dist} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(client, filepath.Join(paths, "viewsync")); err != nil {
		t.Fatal(err)
	}
	args := []string{"--bundle", "--format=esm", "--platform=browser", "--target=es2022",
		"--outdir=" + dist, "--log-level=warning",
		`--define:process.env.NODE_ENV="production"`,
		"--define:__VUE_OPTIONS_API__=false",
		"--define:__VUE_PROD_DEVTOOLS__=false",
		"--define:__VUE_PROD_HYDRATION_MISMATCH_DETAILS__=false",
	}
	for name, code := range bindingApps {
		f := filepath.Join(src, name+".js")
		if err := os.WriteFile(f, []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, f)
	}
	cmd := exec.Command(esbuild, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODE_PATH="+paths+string(os.PathListSeparator)+modules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("esbuild: %v\n%s", err, out)
	}
	return dist
}
