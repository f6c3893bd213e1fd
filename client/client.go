// Package client embeds viewsync's browser client — viewsync.js, the entry
// ES module, the modules of viewsync/ it imports relatively, and the
// TypeScript declarations viewsync.d.ts — so that the server binary can
// serve them:
//
//	for _, p := range client.Patterns {
//		mux.Handle(p, client.Handler())
//	}
//
// Pages then `import { connect } from '/viewsync.js'`, and the browser
// fetches /viewsync/session.js and the other modules itself.
//
// Caveats: the modules are served as they are, not bundled nor minified;
// browsers revalidate each on every load (Cache-Control: no-cache) against
// its ETag, so a page load costs one conditional request per module.
package client

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

// Patterns are the http.ServeMux patterns under which Handler serves the
// client at the root of a site: the entry module, its modules, the types.
var Patterns = []string{"GET /viewsync.js", "GET /viewsync/", "GET /viewsync.d.ts"}

//go:embed viewsync.js viewsync.d.ts viewsync/*.js
var files embed.FS

// file is one served file.
type file struct {
	body  []byte
	etag  string
	ctype string
}

// served maps each file's path ("viewsync.js", "viewsync/session.js", …)
// to what is served for it.
var served = func() map[string]file {
	m := map[string]file{}
	err := fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ctype := "text/javascript; charset=utf-8"
		if strings.HasSuffix(path, ".d.ts") {
			ctype = "application/typescript; charset=utf-8"
		}
		m[path] = file{body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, ctype: ctype}
		return nil
	})
	if err != nil {
		panic("client: reading the embedded files: " + err.Error())
	}
	return m
}()

// lookup finds the file a request path names: one ending in /viewsync.js,
// /viewsync.d.ts or /viewsync/MODULE.js, so that the client can be mounted
// under any prefix.
func lookup(path string) (file, bool) {
	i := strings.LastIndex(path, "/viewsync")
	if i < 0 {
		return file{}, false
	}
	f, ok := served[path[i+1:]]
	return f, ok
}

// Handler serves the client for GET and HEAD of any path ending in
// /viewsync.js, /viewsync.d.ts or /viewsync/MODULE.js (mount it under
// Patterns, or the same under a prefix). Any other path is 404.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			hd.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		f, ok := lookup(r.URL.Path)
		if !ok {
			http.NotFound(w, r)
			return
		}
		hd.Set("Content-Type", f.ctype)
		hd.Set("Cache-Control", "no-cache")
		hd.Set("ETag", f.etag)
		hd.Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
	})
}
