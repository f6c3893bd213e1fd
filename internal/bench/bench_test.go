package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/transport/httpapi"
	"github.com/viewsync/viewsync/transport/sse"
	"github.com/viewsync/viewsync/transport/ws"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var d []time.Duration
		for _, n := range ns {
			d = append(d, time.Duration(n)*time.Millisecond)
		}
		return d
	}
	tests := []struct {
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 50, 7 * time.Millisecond},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{ms(1, 2, 3, 4), 51, 3 * time.Millisecond},
		{ms(1, 2, 3, 4), 100, 4 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.1, 1 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.sorted, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	var samples []time.Duration
	for i := 1000; i >= 1; i-- { // unsorted on purpose
		samples = append(samples, time.Duration(i)*time.Microsecond)
	}
	got := summarize(samples)
	want := latencySummary{Samples: 1000, P50ms: 0.5, P90ms: 0.9, P99ms: 0.99, MaxMs: 1}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
	if got := summarize(nil); got != (latencySummary{}) {
		t.Errorf("summarize(nil) = %+v, want zeros", got)
	}
}

func TestParseSourceIPs(t *testing.T) {
	tests := []struct {
		spec string
		want string // comma-separated, or "error"
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"127.0.0.2-4", "127.0.0.2,127.0.0.3,127.0.0.4"},
		{" 10.0.0.1 , 127.0.0.9-9,", "10.0.0.1,127.0.0.9"},
		{"::1", "::1"},
		{"127.0.0.5-3", "error"},
		{"127.0.0.1-256", "error"},
		{"::1-3", "error"},
		{"localhost", "error"},
		{",", "error"},
	}
	for _, tt := range tests {
		ips, err := parseSourceIPs(tt.spec)
		got := ipList(ips)
		if err != nil {
			got = "error"
		}
		if got != tt.want {
			t.Errorf("parseSourceIPs(%q) = %s (%v), want %s", tt.spec, got, err, tt.want)
		}
	}
}

func TestSourceIPsDefault(t *testing.T) {
	tests := []struct {
		spec  string
		conns int
		host  string
		want  string
	}{
		{"", 100, "127.0.0.1", "127.0.0.1"},
		{"", 9999, "localhost", "127.0.0.1"},
		{"", 10000, "127.0.0.1", "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9"},
		{"", 50000, "example.com", ""},
		{"", 50000, "10.1.2.3", ""},
		{"", 50000, "::1", ""},
		{"127.0.0.3-4", 10, "127.0.0.1", "127.0.0.3,127.0.0.4"},
	}
	for _, tt := range tests {
		ips, err := sourceIPs(tt.spec, tt.conns, tt.host)
		if err != nil || ipList(ips) != tt.want {
			t.Errorf("sourceIPs(%q, %d, %q) = %s, %v; want %s", tt.spec, tt.conns, tt.host, ipList(ips), err, tt.want)
		}
	}
}

func ipList(ips []net.IP) string {
	var s []string
	for _, ip := range ips {
		s = append(s, ip.String())
	}
	return strings.Join(s, ",")
}

func TestParseProc(t *testing.T) {
	// The command name may hold spaces and parentheses.
	stat := "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 1170 0 0 0 250 37 0 0 20 0 12 0 1234 1000000 500 18446744073709551615\n"
	ticks, err := parseProcStat([]byte(stat))
	if err != nil || ticks != 287 {
		t.Errorf("parseProcStat = %d, %v; want 287 (250 user + 37 system)", ticks, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 eleven 12"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q): no error", bad)
		}
	}
	status := "Name:\tviewsync\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t7\n"
	if rss, err := parseProcStatus([]byte(status), "VmRSS"); err != nil || rss != 10240<<10 {
		t.Errorf("VmRSS = %d, %v; want %d", rss, err, 10240<<10)
	}
	if hwm, err := parseProcStatus([]byte(status), "VmHWM"); err != nil || hwm != 20480<<10 {
		t.Errorf("VmHWM = %d, %v; want %d", hwm, err, 20480<<10)
	}
	if _, err := parseProcStatus([]byte(status), "VmSwap"); err == nil {
		t.Error("VmSwap: no error for a missing key")
	}
	if _, err := parseProcStatus([]byte("VmRSS: 12 pages\n"), "VmRSS"); err == nil {
		t.Error("VmRSS in pages: no error")
	}
	if runtime.GOOS == "linux" {
		st, err := readProc("self")
		if err != nil || st.rss == 0 || st.hwm < st.rss {
			t.Errorf("readProc(self) = %+v, %v", st, err)
		}
	}
}

func TestSSEParser(t *testing.T) {
	long := strings.Repeat("y", 20<<10) // longer than the reader's buffer
	stream := "retry: 2000\n\n" +
		": ping\n\n" +
		"id: E1:3\nevent: reset\ndata: {\"collection\":\"c\",\"records\":[{\"id\":\"k\",\"value\":\"" + long + "\"}]}\n\n" +
		"id: E1:4\r\nevent: commit\r\ndata: {\"version\":4,\"ops\":[{\"op\":\"put\",\"id\":\"k00\",\"value\":{\"sent_ns\":1234,\"seq\":0}}]}\r\n\r\n" +
		"id: E1:5\nevent: commit\ndata: {\"version\":5,\"ops\":[{\"op\":\"delete\",\"id\":\"k00\"}]}\n\n" +
		"id: E1:9\nevent: catchup\ndata: {\"compacted\":true}\n\n" +
		"id: E1:10\nevent: surprise\ndata: {}\n\n"
	s := &sseStream{body: io.NopCloser(nil), r: sseReader{br: bufio.NewReaderSize(strings.NewReader(stream), 4096)}}
	want := []benchEvent{
		{kind: evReset, epoch: "E1", version: 3},
		{kind: evCommit, version: 4, sentNS: 1234},
		{kind: evCommit, version: 5},
		{kind: evCatchUp, epoch: "E1", version: 9},
	}
	for i, w := range want {
		got, err := s.next()
		if err != nil || got != w {
			t.Fatalf("event %d = %+v, %v; want %+v", i, got, err, w)
		}
	}
	if _, err := s.next(); err == nil || !strings.Contains(err.Error(), "surprise") {
		t.Errorf("unknown event: %v, want an error naming it", err)
	}
	if _, err := s.next(); !errors.Is(err, io.EOF) {
		t.Errorf("at the end: %v, want EOF", err)
	}
}

func TestExtractInt(t *testing.T) {
	b := []byte(`{"type":"commit","collection":"c","epoch":"E","version":17,"at":"2026-01-01T00:00:00Z","ops":[{"op":"put","id":"k","value":{"sent_ns":1700000000000000001,"seq":2}}]}`)
	if v := extractInt(b, `"version":`); v != 17 {
		t.Errorf("version = %d", v)
	}
	if v := extractInt(b, `"sent_ns":`); v != 1700000000000000001 {
		t.Errorf("sent_ns = %d", v)
	}
	if v := extractInt(b, `"nope":`); v != 0 {
		t.Errorf("missing key = %d, want 0", v)
	}
}

func TestBenchValue(t *testing.T) {
	now := time.Unix(1700000000, 123)
	for _, size := range []int{minValueSize, 100, 1000} {
		b := benchValue(now, 12345, size)
		var v struct {
			SentNS int64 `json:"sent_ns"`
			Seq    int   `json:"seq"`
		}
		if err := json.Unmarshal(b, &v); err != nil || v.SentNS != now.UnixNano() || v.Seq != 12345 {
			t.Errorf("size %d: %s decodes to %+v, %v", size, b, v, err)
		}
		if len(b) != size {
			t.Errorf("size %d: value is %d bytes", size, len(b))
		}
	}
}

func TestBenchRejectsBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"fanout"}, "--url and --spawn"},
		{[]string{"fanout", "--url", "http://x", "--spawn"}, "--url and --spawn"},
		{[]string{"fanout", "--url", "ftp://x"}, "--url"},
		{[]string{"fanout", "--url", "http://x", "--transport", "carrier-pigeon"}, "--transport"},
		{[]string{"fanout", "--url", "http://x", "--subscribers", "0"}, "--subscribers"},
		{[]string{"fanout", "--url", "http://x", "--rate", "0"}, "--rate"},
		{[]string{"fanout", "--url", "http://x", "--rate", "0.1", "--duration", "1s"}, "at least one commit"},
		{[]string{"fanout", "--url", "http://x", "--value-size", "10"}, "--value-size"},
		{[]string{"fanout", "--url", "http://x", "--collection", "No Such"}, "--collection"},
		{[]string{"fanout", "--url", "http://x", "--views", "-1"}, "--views"},
		{[]string{"fanout", "--url", "http://x", "--views", "5", "--subscribers", "4"}, "every view needs a subscriber"},
		{[]string{"fanout", "--spawn", "--views", "2", "--baseline"}, "--baseline"},
		{[]string{"idle", "--url", "http://x", "--connections", "-1"}, "--connections"},
		{[]string{"idle", "--url", "http://x", "--collection", "No Such"}, "--collection"},
		{[]string{"writes"}, "--url and --spawn"},
		{[]string{"writes", "--url", "http://x", "--writers", "0"}, "--writers"},
		{[]string{"writes", "--url", "http://x", "--duration", "0s"}, "--duration"},
		{[]string{"writes", "--url", "http://x", "--value-size", "63"}, "--value-size"},
		{[]string{"writes", "--url", "http://x", "--value-size", "63B"}, "--value-size"},
		{[]string{"writes", "--url", "http://x", "--value-size", "a lot"}, "not a size"},
		{[]string{"writes", "--url", "http://x", "--collections", "0"}, "--collections"},
		{[]string{"writes", "--url", "http://x", "--collection", "No Such"}, "--collection"},
		{[]string{"writes", "--url", "http://x", "--collection", strings.Repeat("w", 63), "--collections", "2"}, "--collection"},
		{[]string{"writes", "--url", "http://x", "--transport", "ws"}, "flag provided but not defined"},
		{[]string{"catchup", "--url", "http://x", "--behind", "0"}, "--behind"},
		{[]string{"catchup", "--url", "http://x", "--page-size", "-1"}, "--page-size"},
		{[]string{"catchup", "--url", "http://x", "--records", "0"}, "--records"},
		{[]string{"catchup", "--url", "http://x", "--retain-commits", "10"}, "--retain-commits needs --spawn"},
		{[]string{"catchup", "--url", "http://x", "--collection", "No Such"}, "--collection"},
		{[]string{"poll", "--url", "http://x", "--connections", "0"}, "--connections"},
		{[]string{"poll", "--url", "http://x", "--duration", "-1s"}, "--duration"},
		{[]string{"poll", "--url", "http://x", "--collection", "No Such"}, "--collection"},
		{[]string{"poll", "--url", "http://x", "surplus"}, "unexpected argument"},
		{[]string{"collections", "--url", "http://x", "--collections", "0"}, "--collections"},
		{[]string{"collections", "--url", "http://x", "--records", "-1"}, "--records"},
		{[]string{"collections", "--url", "http://x", "--rate", "0"}, "--rate"},
		{[]string{"collections", "--url", "http://x", "--subscribers", "-1"}, "--subscribers"},
		{[]string{"stampede"}, `unknown scenario "stampede"`},
		{[]string{}, "Usage: viewsync bench"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runBench(t, tt.args...)
		if code != 2 || !strings.Contains(stderr, tt.want) || stdout != "" {
			t.Errorf("bench %s: exit %d, stdout %q, stderr %q; want 2 and %q", strings.Join(tt.args, " "), code, stdout, stderr, tt.want)
		}
	}
	t.Setenv("VIEWSYNC_TRANSPORT", "smoke-signals")
	if code, _, stderr := runBench(t, "idle", "--url", "http://x"); code != 2 || !strings.Contains(stderr, "VIEWSYNC_TRANSPORT") && !strings.Contains(stderr, "--transport") {
		t.Errorf("bench idle with VIEWSYNC_TRANSPORT=smoke-signals: exit %d, stderr %q", code, stderr)
	}
}

func TestBenchHelp(t *testing.T) {
	for _, sc := range []string{"fanout", "idle", "writes", "catchup", "poll"} {
		code, _, stderr := runBench(t, sc, "--help")
		if code != 0 || !strings.Contains(stderr, "Usage: viewsync bench "+sc) || !strings.Contains(stderr, "-spawn") {
			t.Errorf("bench %s --help: exit %d, stderr %q", sc, code, stderr)
		}
	}
	if code, stdout, _ := runBench(t, "help"); code != 0 || !strings.Contains(stdout, "history") {
		t.Errorf("bench help does not list the scenarios: %q", stdout)
	}
}

// startBenchServer starts an in-process server with the SSE and WebSocket
// transports and returns its URL.
func startBenchServer(t *testing.T) string {
	t.Helper()
	return startServer(t, benchStore(t), nil, httpapi.Options{}, nil)
}

// benchStore opens a bbolt store in a temporary directory; startServer
// closes it.
func benchStore(t *testing.T) store.Store {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "viewsync.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// startServer starts an in-process server on st, with the hub's options
// hubOpts and the API's apiOpts, to which it adds the SSE and WebSocket
// transports, served through wrap unless it is nil; it returns its URL.
// The server and st are closed when the test ends.
func startServer(t *testing.T, st store.Store, hubOpts []viewsync.Option, apiOpts httpapi.Options, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	hub, err := viewsync.New(st, hubOpts...)
	if err != nil {
		t.Fatal(err)
	}
	events, err := sse.New(hub, nil)
	if err != nil {
		t.Fatal(err)
	}
	sockets, err := ws.New(hub, nil)
	if err != nil {
		t.Fatal(err)
	}
	apiOpts.Events, apiOpts.WebSocket = events, sockets
	api, err := httpapi.New(hub, &apiOpts)
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = api
	if wrap != nil {
		h = wrap(api)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sockets.Shutdown(ctx)
		hub.Close()
		srv.Close()
		st.Close()
	})
	return srv.URL
}

// TestBenchFanout runs a small fanout against an in-process server over
// each transport and checks the report.
func TestBenchFanout(t *testing.T) {
	for _, transport := range []string{"sse", "ws"} {
		t.Run(transport, func(t *testing.T) {
			base := startBenchServer(t)
			r, stderr := runJSON[fanoutReport](t, "fanout", "--url", base, "--transport", transport,
				"--subscribers", "20", "--rate", "50", "--duration", "1s", "--collection", "bench-"+transport)
			if r.Missing != 0 || r.Duplicated != 0 || r.SubscribersMissing != 0 {
				t.Errorf("missing %d (at %d subscribers), duplicated %d; want none", r.Missing, r.SubscribersMissing, r.Duplicated)
			}
			if r.Established != 20 || r.Commits != 50 || r.CommitErrors != 0 {
				t.Errorf("established %d, commits %d, commit errors %d; want 20, 50, 0", r.Established, r.Commits, r.CommitErrors)
			}
			if r.Deliveries != 20*50 || r.ExpectedDeliveries != 20*50 || r.Latency.Samples != 20*50 {
				t.Errorf("deliveries %d of %d expected, %d latency samples; want 1000 each", r.Deliveries, r.ExpectedDeliveries, r.Latency.Samples)
			}
			l := r.Latency
			if !(l.P50ms > 0 && l.P50ms <= l.P90ms && l.P90ms <= l.P99ms && l.P99ms <= l.MaxMs && l.MaxMs < 10_000) {
				t.Errorf("latency %+v: not ordered, or not sane", l)
			}
			if r.DeliveriesPerSec <= 0 || r.CommitRate <= 0 || r.Spawned || r.Server != nil || r.Transport != transport {
				t.Errorf("report %+v", r)
			}
			if !strings.Contains(stderr, "connected 20/20") && !strings.Contains(stderr, "connecting 20") {
				t.Errorf("no progress on stderr: %s", stderr)
			}
		})
	}
}

// TestBenchCollections: 12 collections of 2 records, one subscriber each;
// every commit to a random collection reaches its one subscriber.
func TestBenchCollections(t *testing.T) {
	for _, transport := range []string{"sse", "ws"} {
		t.Run(transport, func(t *testing.T) {
			base := startBenchServer(t)
			r, _ := runJSON[collectionsReport](t, "collections", "--url", base, "--transport", transport, "--collections", "12",
				"--records", "2", "--rate", "40", "--duration", "1s", "--settle", "0s", "--collection", "room-"+transport)
			if r.Collections != 12 || r.Established != 12 || r.WriteErrors != 0 || r.Commits != 40 || r.Errors != 0 {
				t.Errorf("report %+v", r)
			}
			if r.Deliveries != 40 || r.Missing != 0 || r.Duplicated != 0 || r.Latency.Samples != 40 {
				t.Errorf("deliveries %d, missing %d, duplicated %d, %d latencies; want 40, 0, 0, 40", r.Deliveries, r.Missing, r.Duplicated, r.Latency.Samples)
			}
		})
	}
}

// TestBenchCollectionsSubscribers: with --subscribers, only the first
// collections are followed, and the commits go to them.
func TestBenchCollectionsSubscribers(t *testing.T) {
	base := startBenchServer(t)
	r, _ := runJSON[collectionsReport](t, "collections", "--url", base, "--collections", "12", "--subscribers", "5",
		"--rate", "40", "--duration", "1s", "--settle", "0s", "--collection", "followed")
	if r.Collections != 12 || r.Subscribers != 5 || r.Established != 5 || r.Commits != 40 || r.Errors != 0 {
		t.Errorf("report %+v", r)
	}
	if r.Deliveries != 40 || r.Missing != 0 || r.Duplicated != 0 {
		t.Errorf("deliveries %d, missing %d, duplicated %d; want 40, 0, 0", r.Deliveries, r.Missing, r.Duplicated)
	}
}

// TestBenchFanoutViews: with --views, each subscriber gets its own view's
// commits only, and the report counts them so: 10 subscribers on 4 views
// (3, 3, 2 and 2 of them), 40 commits spread over the views (10 each).
func TestBenchFanoutViews(t *testing.T) {
	for _, transport := range []string{"sse", "ws"} {
		t.Run(transport, func(t *testing.T) {
			base := startBenchServer(t)
			r, _ := runJSON[fanoutReport](t, "fanout", "--url", base, "--transport", transport, "--views", "4",
				"--subscribers", "10", "--rate", "40", "--duration", "1s", "--collection", "views-"+transport)
			if r.Views != 4 || r.Established != 10 || r.Commits != 40 || r.CommitErrors != 0 {
				t.Errorf("views %d, established %d, commits %d, commit errors %d; want 4, 10, 40, 0", r.Views, r.Established, r.Commits, r.CommitErrors)
			}
			if r.Missing != 0 || r.Duplicated != 0 || r.ExtraResets != 0 {
				t.Errorf("missing %d, duplicated %d, extra resets %d; want none", r.Missing, r.Duplicated, r.ExtraResets)
			}
			if r.Deliveries != 100 || r.ExpectedDeliveries != 100 || r.Latency.Samples != 100 {
				t.Errorf("deliveries %d of %d expected, %d latency samples; want 100 each", r.Deliveries, r.ExpectedDeliveries, r.Latency.Samples)
			}
		})
	}
}

// TestBenchIdle opens a few idle subscriptions to an in-process server.
func TestBenchIdle(t *testing.T) {
	base := startBenchServer(t)
	for _, transport := range []string{"sse", "ws"} {
		code, stdout, stderr := runBench(t, "idle", "--url", base, "--transport", transport,
			"--connections", "30", "--settle", "0s")
		if code != 0 {
			t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", transport, code, stdout, stderr)
		}
		if !strings.Contains(stdout, "30 of 30 established") || strings.Contains(stdout, "RSS") {
			t.Errorf("%s: report:\n%s", transport, stdout)
		}
	}
}

// TestTailBuffer checks the buffer keeps the end of what it is given.
func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	for _, s := range []string{"abc", "defgh", "ijklmnop", "q"} {
		b.Write([]byte(s))
	}
	if got := b.String(); got != "jklmnopq" {
		t.Errorf("tail = %q, want %q", got, "jklmnopq")
	}
}
