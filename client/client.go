// Package client embeds viewsync's browser client, viewsync.js (an ES
// module with no dependencies), and its TypeScript declarations, so that the
// server binary can serve them (GET /viewsync.js).
//
// Caveats: the module is served as is, not minified; browsers revalidate it
// on each load (Cache-Control: no-cache) against its ETag.
package client

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

// JS is the source of viewsync.js.
//
//go:embed viewsync.js
var JS []byte

// Types is the source of viewsync.d.ts.
//
//go:embed viewsync.d.ts
var Types []byte

var (
	jsTag    = etag(JS)
	typesTag = etag(Types)
)

func etag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// Handler serves viewsync.js, and viewsync.d.ts next to it, for GET and
// HEAD of any path ending in either name (mount it at /viewsync.js, and at
// /viewsync.d.ts if wanted). Any other path is 404.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			hd.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var body []byte
		var tag, ctype string
		switch {
		case strings.HasSuffix(r.URL.Path, "/viewsync.js"):
			body, tag, ctype = JS, jsTag, "text/javascript; charset=utf-8"
		case strings.HasSuffix(r.URL.Path, "/viewsync.d.ts"):
			body, tag, ctype = Types, typesTag, "application/typescript; charset=utf-8"
		default:
			http.NotFound(w, r)
			return
		}
		hd.Set("Content-Type", ctype)
		hd.Set("Cache-Control", "no-cache")
		hd.Set("ETag", tag)
		hd.Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
}
