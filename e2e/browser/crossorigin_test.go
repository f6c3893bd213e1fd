package browser

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// crossOriginPage is a page of another site that uses viewsync: it imports
// viewsync.js from its own origin, connects to the viewsync server named
// by ?vs= and keeps what the session and its view report in window.result.
const crossOriginPage = `<!doctype html>
<meta charset="utf-8">
<title>another site</title>
<script type="module">
import { connect } from '/viewsync.js';
const result = window.result = { errors: [], states: [], ready: null };
const session = window.session = connect({ url: new URLSearchParams(location.search).get('vs') });
session.on('error', (e) => { result.errors.push({ code: e.code, message: e.message }); });
session.on('status', (st) => { result.states.push(st.state + '/' + st.transport); });
const view = window.view = session.collection('products');
view.ready.then(
  (version) => { result.ready = { ok: true, version }; },
  (e) => { result.ready = { ok: false, code: e.code, message: e.message }; },
);
</script>
`

// TestCrossOriginPage: a page on another origin that connects to a
// viewsync server started without --cors-origin gets no answer at all (the
// browser refuses every request; only its console says why): after the
// session's attempts it is told so, with the server's URL and the
// --cors-origin to start it with, and the view's ready rejects. The same
// page, against a server started with --cors-origin and the page's origin,
// goes live and follows the collection.
func TestCrossOriginPage(t *testing.T) {
	closed := startServer(t, t.TempDir(), "")

	// The page's site, on another port of 127.0.0.1 (another origin). It
	// serves its own copy of the client, read from the viewsync server: a
	// module imported from another origin must be CORS-readable, which it
	// is not from a server without --cors-origin.
	proxy := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(proxy.CloseIdleConnections)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, crossOriginPage)
			return
		}
		if !strings.HasPrefix(r.URL.Path, "/viewsync") {
			http.NotFound(w, r)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, closed.url+r.URL.Path, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		res, err := proxy.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		w.Header().Set("Content-Type", res.Header.Get("Content-Type"))
		w.WriteHeader(res.StatusCode)
		io.Copy(w, res.Body)
	}))
	t.Cleanup(site.Close)
	origin := site.URL
	open := startServer(t, t.TempDir(), "", "--cors-origin", origin)
	open.put("p-1-lamp", product{Name: "Desk lamp", Description: "brass", Price: 30})

	b := newBrowser(t)

	t.Run("without --cors-origin", func(t *testing.T) {
		p := b.open(t, "other site", site.URL+"/?vs="+closed.url)
		var ready struct {
			OK      bool   `json:"ok"`
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		p.waitFor("ready settled", `window.result && window.result.ready`, liveTimeout, &ready)
		if ready.OK || ready.Code != "unreachable" {
			t.Fatalf("ready: %+v, want rejected with code unreachable", ready)
		}
		var errs []struct{ Code, Message string }
		p.eval("errors", `window.result.errors`, &errs)
		if len(errs) != 1 || errs[0].Code != "unreachable" {
			t.Fatalf("error events: %+v, want one unreachable", errs)
		}
		for _, want := range []string{
			"no answer from " + closed.url + " after 5 attempts",
			"is the server running",
			"was the server started with --cors-origin " + origin + "?",
		} {
			if !strings.Contains(errs[0].Message, want) {
				t.Errorf("error message %q does not say %q", errs[0].Message, want)
			}
		}
		if ready.Message != errs[0].Message {
			t.Errorf("ready rejected with %q, the error event said %q", ready.Message, errs[0].Message)
		}
		// It keeps trying, and says it once.
		n := 0
		p.eval("states", `window.result.states.length`, &n)
		p.waitFor("another attempt", `window.result.states.length > `+strconv.Itoa(n), liveTimeout, nil)
		p.eval("errors", `window.result.errors`, &errs)
		if len(errs) != 1 {
			t.Errorf("error events: %+v, want the one", errs)
		}
		var state string
		p.eval("state", `window.session.status.state`, &state)
		if state == "live" {
			t.Errorf("session live on a server that refuses the page's origin")
		}
		if len(p.sent(closed.url)) == 0 {
			t.Errorf("the page sent no request to %s", closed.url)
		}
	})

	t.Run("with --cors-origin", func(t *testing.T) {
		p := b.open(t, "other site", site.URL+"/?vs="+open.url)
		var ready struct {
			OK      bool   `json:"ok"`
			Version uint64 `json:"version"`
			Message string `json:"message"`
		}
		p.waitFor("ready settled", `window.result && window.result.ready`, liveTimeout, &ready)
		if !ready.OK || ready.Version < 1 {
			t.Fatalf("ready: %+v, want resolved with the collection's version", ready)
		}
		p.waitFor("live", `window.session.status.state === 'live'`, liveTimeout, nil)
		var name string
		p.eval("the record", `window.view.get('p-1-lamp').name`, &name)
		if name != "Desk lamp" {
			t.Errorf("p-1-lamp's name: %q, want Desk lamp", name)
		}
		open.put("p-2-kettle", product{Name: "Kettle", Description: "steel", Price: 12.5})
		p.waitFor("a change made elsewhere", `window.view.get('p-2-kettle')?.name === 'Kettle'`, changeTimeout, nil)
		var errs []struct{ Code, Message string }
		p.eval("errors", `window.result.errors`, &errs)
		if len(errs) > 0 {
			t.Errorf("error events: %+v, want none", errs)
		}
	})
}
