//go:build unix

package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/metrics"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/transport/httpapi"
)

// benchHub returns a hub on a bbolt store in a temporary directory. The
// store skips fsync: these benchmarks measure reads, and the setup writes
// many commits.
func benchHub(b *testing.B) *viewsync.Hub {
	b.Helper()
	st, err := boltstore.Open(filepath.Join(b.TempDir(), "bench.db"), &boltstore.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	hub, err := viewsync.New(st)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { hub.Close() })
	return hub
}

// benchHandler returns the API handler of hub; with observe it measures
// every request in Prometheus metrics, as `viewsync serve` does.
func benchHandler(b *testing.B, hub *viewsync.Hub, observe bool) http.Handler {
	b.Helper()
	var o httpapi.Options
	if observe {
		m := metrics.New()
		o.Observer, o.Metrics = m, m.Handler()
	}
	h, err := httpapi.New(hub, &o)
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// benchServer serves handler over real HTTP and returns its URL and a
// client whose connection pool fits the parallel benchmark.
func benchServer(b *testing.B, handler http.Handler) (string, *http.Client) {
	b.Helper()
	srv := httptest.NewServer(handler)
	b.Cleanup(srv.Close)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	b.Cleanup(tr.CloseIdleConnections)
	return srv.URL, &http.Client{Transport: tr}
}

// product is a record value of a typical size (about 120 bytes).
func product(i int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"name":"Widget %d","price":%d.99,"stock":%d,"tags":["blue","large"],"description":"A widget of the usual kind."}`, i, i%100, i%37))
}

// fill makes n commits of one put each on coll, over ids distinct ids.
func fill(b *testing.B, hub *viewsync.Hub, coll string, n, ids int) protocol.Head {
	b.Helper()
	c, err := hub.Collection(coll)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if _, err := c.Put(context.Background(), fmt.Sprintf("product-%04d", i%ids), product(i)); err != nil {
			b.Fatal(err)
		}
	}
	hd, err := c.Head(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return hd
}

// cpuTime is the user plus system CPU time this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// get GETs url with an optional If-None-Match, reads the whole body and
// returns the status and the body's length.
func get(client *http.Client, url, inm string) (int, int64, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	if inm != "" {
		req.Header.Set("If-None-Match", inm)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, n, err
}

// runParallelHTTP runs GET url (with If-None-Match inm) from 4×GOMAXPROCS
// goroutines (enough to keep the CPUs busy across network round trips),
// checks every answer has status want, and reports reads per
// second and CPU microseconds per read (the process's user+system time,
// which includes the client's).
func runParallelHTTP(b *testing.B, client *http.Client, url, inm string, want int, unit string) {
	b.Helper()
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	start := time.Now()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			status, _, err := get(client, url, inm)
			if err != nil || status != want {
				b.Errorf("GET %s: %d %v, want %d", url, status, err, want)
				return
			}
		}
	})
	b.StopTimer()
	elapsed, cpu := time.Since(start), cpuTime(b)-cpu0
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), unit+"/s")
	b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/"+unit)
}

// BenchmarkVersionPoll is the cheap "am I stale?" poll of an up-to-date
// client over real HTTP (keep-alive): GET /version with If-None-Match
// answered 304.
func BenchmarkVersionPoll(b *testing.B) {
	for _, observe := range []bool{false, true} {
		b.Run(fmt.Sprintf("metrics=%v", observe), func(b *testing.B) {
			hub := benchHub(b)
			hd := fill(b, hub, "products", 10, 10)
			url, client := benchServer(b, benchHandler(b, hub, observe))
			etag := `"` + hd.Cursor().String() + `"`
			runParallelHTTP(b, client, url+"/v1/collections/products/version", etag, http.StatusNotModified, "poll")
		})
	}
}

// nopWriter is the least a handler can write to: it keeps the header map
// and counts the body, so the handler's own cost is what is measured.
type nopWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *nopWriter) Header() http.Header { return w.h }

func (w *nopWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}

func (w *nopWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

// BenchmarkVersionPollHandler isolates the server's cost of a version poll:
// Handler.ServeHTTP called directly, no network, no client. The 304 case is
// the up-to-date client, the 200 case a stale one.
func BenchmarkVersionPollHandler(b *testing.B) {
	for _, observe := range []bool{false, true} {
		for _, stale := range []bool{false, true} {
			name := fmt.Sprintf("metrics=%v/status=%d", observe, map[bool]int{false: 304, true: 200}[stale])
			b.Run(name, func(b *testing.B) {
				hub := benchHub(b)
				hd := fill(b, hub, "products", 10, 10)
				h := benchHandler(b, hub, observe)
				req := httptest.NewRequest(http.MethodGet, "/v1/collections/products/version", nil)
				want := http.StatusOK
				if !stale {
					req.Header.Set("If-None-Match", `"`+hd.Cursor().String()+`"`)
					want = http.StatusNotModified
				}
				w := &nopWriter{h: http.Header{}}
				b.ReportAllocs()
				for b.Loop() {
					clear(w.h)
					w.status = 0
					h.ServeHTTP(w, req)
				}
				if w.status != want {
					b.Fatalf("status %d, want %d", w.status, want)
				}
			})
		}
	}
}

// BenchmarkChangesBehind1000: a client 1,000 commits behind asks for what
// it missed: one full page (PageSize 1000) of single-put commits, over real
// HTTP. MB/s is the body's.
func BenchmarkChangesBehind1000(b *testing.B) {
	hub := benchHub(b)
	hd := fill(b, hub, "products", 2000, 1000)
	url, client := benchServer(b, benchHandler(b, hub, false))
	url = fmt.Sprintf("%s/v1/collections/products/changes?after=%d&epoch=%s", url, hd.Version-1000, hd.Epoch)

	// Check the answer once, and size it.
	resp, err := client.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	var ch protocol.Changes
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || json.Unmarshal(body, &ch) != nil || len(ch.Commits) != 1000 || ch.Commits[999].Version != hd.Version {
		b.Fatalf("changes: %d commits (%v), want 1000 up to %d", len(ch.Commits), err, hd.Version)
	}
	b.SetBytes(int64(len(body)))
	runParallelHTTP(b, client, url, "", http.StatusOK, "read")
}

// BenchmarkSnapshot1000 reads the snapshot of a 1,000-record collection
// over real HTTP. MB/s is the body's.
func BenchmarkSnapshot1000(b *testing.B) {
	hub := benchHub(b)
	fill(b, hub, "products", 1000, 1000)
	url, client := benchServer(b, benchHandler(b, hub, false))
	url += "/v1/collections/products"

	resp, err := client.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	var snap protocol.Snapshot
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || json.Unmarshal(body, &snap) != nil || len(snap.Records) != 1000 {
		b.Fatalf("snapshot: %d records (%v), want 1000", len(snap.Records), err)
	}
	b.SetBytes(int64(len(body)))
	runParallelHTTP(b, client, url, "", http.StatusOK, "read")
}
