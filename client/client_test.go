package client_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/viewsync/viewsync/client"
)

// sources are the files the client is made of, by the path they are served
// at, read from the source tree.
func sources(t *testing.T) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob("viewsync/*.js")
	if err != nil || len(names) < 5 {
		t.Fatalf("the client's modules: %v %v", names, err)
	}
	names = append(names, "viewsync.js", "viewsync.d.ts")
	m := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil || len(b) == 0 {
			t.Fatalf("%s: %v", n, err)
		}
		m["/"+filepath.ToSlash(n)] = b
	}
	return m
}

// mux mounts the client as the server does.
func mux() *http.ServeMux {
	m := http.NewServeMux()
	for _, p := range client.Patterns {
		m.Handle(p, client.Handler())
	}
	return m
}

func get(h http.Handler, method, target string, header http.Header) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	h.ServeHTTP(rec, req)
	return rec
}

// TestHandler: every file of the client is served, with its type, its ETag
// and the caching of the entry module, at the root and under a prefix.
func TestHandler(t *testing.T) {
	m := mux()
	prefixed := http.StripPrefix("/static", client.Handler())
	for p, want := range sources(t) {
		ctype := "text/javascript; charset=utf-8"
		if path.Ext(p) == ".ts" {
			ctype = "application/typescript; charset=utf-8"
		}
		for _, tc := range []struct {
			h      http.Handler
			target string
		}{{m, p}, {client.Handler(), "/static" + p}, {prefixed, "/static" + p}} {
			rec := get(tc.h, "GET", tc.target, nil)
			if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), want) {
				t.Fatalf("GET %s: %d, %d bytes, want %d", tc.target, rec.Code, rec.Body.Len(), len(want))
			}
			hd := rec.Header()
			if hd.Get("Content-Type") != ctype || hd.Get("Cache-Control") != "no-cache" ||
				hd.Get("X-Content-Type-Options") != "nosniff" || hd.Get("ETag") == "" {
				t.Errorf("GET %s: headers %v", tc.target, hd)
			}
			again := get(tc.h, "GET", tc.target, http.Header{"If-None-Match": {hd.Get("ETag")}})
			if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
				t.Errorf("GET %s with its ETag: %d, %d bytes, want 304", tc.target, again.Code, again.Body.Len())
			}
			if head := get(tc.h, "HEAD", tc.target, nil); head.Code != 200 || head.Body.Len() != 0 {
				t.Errorf("HEAD %s: %d, %d bytes", tc.target, head.Code, head.Body.Len())
			}
		}
	}
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/other.js", 404}, {"GET", "/viewsync/", 404}, {"GET", "/viewsync/missing.js", 404},
		{"GET", "/viewsync/session", 404}, {"GET", "/myviewsync.js", 404}, {"POST", "/viewsync.js", 405},
	} {
		if rec := get(client.Handler(), tc.method, tc.path, nil); rec.Code != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, rec.Code, tc.status)
		}
	}
}

// TestImportsResolve: every relative import of every module names a file
// that the handler serves, so a browser that loads /viewsync.js gets the
// whole client.
func TestImportsResolve(t *testing.T) {
	m := mux()
	imports := regexp.MustCompile(`(?m)^(?:import|export)\b[^;]*?\bfrom\s+'([^']+)'`)
	seen := map[string]bool{"/viewsync.js": true}
	queue := []string{"/viewsync.js"}
	// The npm package's framework entries (viewsync/react, /vue, /svelte)
	// are not served, but the modules they import are.
	for _, entry := range []string{"react.js", "vue.js", "svelte.js"} {
		b, err := os.ReadFile(entry)
		if err != nil {
			t.Fatal(err)
		}
		for _, sub := range imports.FindAllStringSubmatch(string(b), -1) {
			if strings.HasPrefix(sub[1], "./") {
				next := "/" + strings.TrimPrefix(sub[1], "./")
				if !seen[next] {
					seen[next] = true
					queue = append(queue, next)
				}
			}
		}
	}
	src := sources(t)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		rec := get(m, "GET", p, nil)
		if rec.Code != 200 {
			t.Fatalf("GET %s: %d", p, rec.Code)
		}
		for _, sub := range imports.FindAllStringSubmatch(rec.Body.String(), -1) {
			base, _ := url.Parse("http://h" + p)
			ref, err := url.Parse(sub[1])
			if err != nil || ref.IsAbs() || sub[1][0] != '.' {
				t.Errorf("%s imports %q: want a relative path", p, sub[1])
				continue
			}
			next := base.ResolveReference(ref).Path
			if !seen[next] {
				seen[next] = true
				queue = append(queue, next)
			}
		}
	}
	for p := range src {
		if !seen[p] && path.Ext(p) == ".js" {
			t.Errorf("%s is served but imported by no module", p)
		}
	}
}
