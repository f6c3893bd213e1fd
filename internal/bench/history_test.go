//go:build unix

package bench

import (
	"encoding/json"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/limit"
	"github.com/viewsync/viewsync/store/memstore"
	"github.com/viewsync/viewsync/transport/httpapi"
)

func TestHistoryDecodeChanges(t *testing.T) {
	tests := []struct {
		name, body string
		want       changesAnswer
		versions   []uint64
	}{
		{"page", `{"epoch":"E","version":9,"commits":[{"version":1,"at":"2026-01-01T00:00:00Z","ops":[{"op":"put","id":"a","value":"` + strings.Repeat("x", 10000) + `"}]},{"version":2,"ops":[{"op":"delete","id":"a"}]}]}`,
			changesAnswer{epoch: "E", version: 9, commits: 2}, []uint64{1, 2}},
		{"empty page", `{"epoch":"E","version":9,"commits":[]}`, changesAnswer{epoch: "E", version: 9}, nil},
		{"catch-up", `{"epoch":"E","version":9,"compacted":true,"records":[{"id":"a","value":1,"version":7}],"deleted":["b","c"]}`,
			changesAnswer{epoch: "E", version: 9, compacted: true, records: 1, deleted: 2}, nil},
		{"reset", `{"epoch":"F","version":3,"reset":true,"records":null,"extra":{"x":[1]}}`, changesAnswer{epoch: "F", version: 3, reset: true}, nil},
	}
	for _, tt := range tests {
		var got []uint64
		a, err := decodeChanges(strings.NewReader(tt.body), func(v uint64) { got = append(got, v) })
		if err != nil || a != tt.want || !slices.Equal(got, tt.versions) {
			t.Errorf("%s: %+v, versions %v, %v; want %+v, %v", tt.name, a, got, err, tt.want, tt.versions)
		}
	}
	for _, bad := range []string{``, `[]`, `{"commits":{}}`, `{"epoch":"E","commits":[{"version":"one"}]}`, `{"epoch":"E"`} {
		if _, err := decodeChanges(strings.NewReader(bad), func(uint64) {}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestHistoryReaderOrder(t *testing.T) {
	r := &historyReader{head: 10, epoch: "E"}
	for _, v := range []uint64{1, 2, 2, 5, 3, 6} {
		r.commit(v)
	}
	// 2 again and 3 after 5 are duplicates; 3 and 4 went missing.
	if r.at.Load() != 6 || r.commits != 3 || r.dups != 2 || r.missing != 2 {
		t.Errorf("at %d, commits %d, dups %d, missing %d; want 6, 3, 2, 2", r.at.Load(), r.commits, r.dups, r.missing)
	}
	if err := r.catchUp("F", 9); err == nil {
		t.Error("a catch-up of another epoch: no error")
	}
	if err := r.catchUp("E", 9); err != nil || r.at.Load() != 9 || r.catchUps != 1 {
		t.Errorf("catch-up: %v, at %d", err, r.at.Load())
	}
	r.reset("F", 4)
	if r.at.Load() != 4 || r.epoch != "F" || r.resets != 1 {
		t.Errorf("reset: at %d, epoch %s", r.at.Load(), r.epoch)
	}
	for _, tt := range []struct {
		event, data string
		busy, err   bool
	}{
		{"error", `{"error":{"code":"unavailable","message":"later"}}`, true, false},
		{"error", `{"error":{"code":"unauthorized","message":"expired"}}`, false, true},
		{"surprise", ``, false, true},
	} {
		busy, err := r.sseEvent([]byte("F:5"), []byte(tt.event), []byte(tt.data))
		if busy != tt.busy || (err != nil) != tt.err {
			t.Errorf("SSE %s %s: busy %v, %v", tt.event, tt.data, busy, err)
		}
	}
	if busy, err := r.wsMessage([]byte(`{"type":"error","code":"unavailable","message":"later"}`)); !busy || err != nil {
		t.Errorf("WebSocket unavailable: busy %v, %v", busy, err)
	}
	if busy, err := r.wsMessage([]byte(`{"type":"commit","collection":"c","epoch":"F","version":5,"ops":[]}`)); busy || err != nil || r.at.Load() != 5 {
		t.Errorf("WebSocket commit: busy %v, %v, at %d", busy, err, r.at.Load())
	}
}

func TestHistoryParsePhases(t *testing.T) {
	tests := []struct {
		in   string
		want []string // nil: an error
	}{
		{"get1,get3,sse6,sse40", historyPhases},
		{" sse40 , get1,,", []string{"get1", "sse40"}},
		{"WS6,ws40,sse6", []string{"sse6", "sse40"}},
		{"get2", nil},
		{",", nil},
	}
	for _, tt := range tests {
		got, err := parsePhases(tt.in)
		if (err != nil) != (tt.want == nil) || !slices.Equal(got, tt.want) {
			t.Errorf("parsePhases(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestHistoryValue(t *testing.T) {
	for _, size := range []int{minHistoryValue, 1000, 200 << 10} {
		b := historyValue(123456, size)
		var s string
		if len(b) != size || json.Unmarshal(b, &s) != nil || !strings.HasPrefix(s, "commit 123456 ") {
			t.Errorf("size %d: %d bytes, %.40s", size, len(b), b)
		}
	}
}

func TestBenchHistoryRejectsBadFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--commits", "0"}, "--commits"},
		{[]string{"--restart-commits", "-1"}, "--restart-commits"},
		{[]string{"--value-bytes", "8"}, "--value-bytes"},
		{[]string{"--value-bytes", "lots"}, "value-bytes"},
		{[]string{"--subscribers", "0"}, "--subscribers"},
		{[]string{"--writers", "0"}, "--writers"},
		{[]string{"--phases", "get1,get9"}, `unknown phase "get9"`},
		{[]string{"--pid", "-3"}, "--pid"},
		{[]string{"--phase-timeout", "0s"}, "--phase-timeout"},
		{[]string{"--transport", "carrier-pigeon"}, "--transport"},
		{[]string{"--collection", "No Such"}, "--collection"},
	} {
		args := append([]string{"history", "--url", "http://x"}, tt.args...)
		code, stdout, stderr := runBench(t, args...)
		if code != 2 || !strings.Contains(stderr, tt.want) || stdout != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 2 and %q", strings.Join(args, " "), code, stdout, stderr, tt.want)
		}
	}
	if code, _, stderr := runBench(t, "history", "--spawn", "--pid", "1"); code != 2 || !strings.Contains(stderr, "--pid") {
		t.Errorf("--spawn with --pid: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runBench(t, "history", "--url", "http://x", "--respawn"); code != 2 || !strings.Contains(stderr, "--respawn needs --spawn") {
		t.Errorf("--url with --respawn: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runBench(t, "history", "--help"); code != 0 || !strings.Contains(stderr, "Usage: viewsync bench history") {
		t.Errorf("--help: exit %d, %q", code, stderr)
	}
	if code, stdout, _ := runBench(t, "help"); code != 0 || !strings.Contains(stdout, "history") {
		t.Errorf("bench help does not list history: %q", stdout)
	}
}

// runHistoryJSON runs the scenario with args and --json and returns its
// report.
func runHistoryJSON(t *testing.T, args ...string) historyReport {
	t.Helper()
	r, stderr := runJSON[historyReport](t, append([]string{"history"}, args...)...)
	progress := []string{"phase "}
	if !slices.Contains(args, "--write=false") {
		progress = append(progress, "writing ")
	}
	for _, s := range progress {
		if !strings.Contains(stderr, s) {
			t.Errorf("no progress %q on stderr: %s", s, stderr)
		}
	}
	return r
}

// checkPhases checks that every phase ran, in order, and that each reader
// got every commit once, in order.
func checkPhases(t *testing.T, r historyReport, names []string, readers []int, measured bool) {
	t.Helper()
	if len(r.Phases) != len(names) {
		t.Fatalf("%d phases, want %v", len(r.Phases), names)
	}
	for i, ph := range r.Phases {
		if ph.Name != names[i] || ph.Readers != readers[i] || ph.Head == 0 || ph.Finished != ph.Readers || ph.InOrder != ph.Readers ||
			ph.Commits != int64(ph.Readers)*int64(ph.Head) || ph.Missing != 0 || ph.Duplicated != 0 || ph.Errors != 0 ||
			ph.Requests < int64(ph.Readers) || ph.Bytes <= 0 || ph.Seconds <= 0 {
			t.Errorf("phase %d: %+v", i, ph)
		}
		if m := ph.Memory; measured != (m != nil) || m != nil && (m.BeforeBytes == 0 || m.PeakBytes < m.BeforeBytes || m.AddedBytes != m.PeakBytes-m.BeforeBytes || m.Samples < 2) {
			t.Errorf("phase %s: memory %+v, measured %v", ph.Name, m, measured)
		}
	}
}

// TestBenchHistorySpawn runs every phase, small, on a server the bench
// starts itself.
func TestBenchHistorySpawn(t *testing.T) {
	useBuiltBinary(t)

	r := runHistoryJSON(t, "--spawn", "--commits", "30", "--value-bytes", "20KiB", "--subscribers", "2",
		"--restart-commits", "40", "--restart-value-bytes", "2KiB", "--restart-subscribers", "3", "--writers", "4", "--settle", "100ms")
	linux := runtime.GOOS == "linux"
	if !r.Spawned || linux != (r.PID > 0) || len(r.Histories) != 2 || linux != (r.IdleAnonBytes > 0) {
		t.Errorf("report %+v", r)
	}
	for i, want := range []historyWrite{{Collection: "bench", Commits: 30, ValueBytes: 20 << 10}, {Collection: "bench-restart", Commits: 40, ValueBytes: 2 << 10}} {
		h := *r.Histories[i]
		if h.Collection != want.Collection || h.Commits != want.Commits || h.ValueBytes != want.ValueBytes ||
			h.Written != int64(h.Commits) || h.Errors != 0 || h.Head != uint64(h.Commits) || h.Epoch == "" {
			t.Errorf("history %d: %+v", i, h)
		}
	}
	checkPhases(t, r, []string{"get1", "get3", "sse6", "sse40"}, []int{1, 3, 2, 3}, linux)
	if linux {
		// Each phase on a server started anew.
		pids := map[int]bool{r.PID: true}
		for _, ph := range r.Phases {
			pids[ph.Memory.PID] = true
		}
		if !r.Respawned || len(pids) != 5 {
			t.Errorf("respawned %v, server pids %v; want 5 different ones", r.Respawned, pids)
		}
	}
	if r.Phases[3].Collection != "bench-restart" || r.Phases[3].Head != 40 {
		t.Errorf("sse40 read %s to %d", r.Phases[3].Collection, r.Phases[3].Head)
	}
}

// TestBenchHistoryBusy runs phases against an in-process server whose
// history memory is all taken when the readers start: each is sent away
// busy at first (503, an SSE error event, a WebSocket close 1013), and
// resumes from its cursor once the memory is free.
func TestBenchHistoryBusy(t *testing.T) {
	base, arm := startBusyServer(t)
	for _, tt := range []struct {
		args    []string
		name    string
		readers int
	}{
		{[]string{"--phases", "get1"}, "get1", 1},
		{[]string{"--phases", "sse6"}, "sse6", 2},
		{[]string{"--phases", "ws6", "--transport", "ws"}, "ws6", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			arm()
			args := append([]string{"--url", base, "--collection", "busy-" + tt.name, "--commits", "12", "--value-bytes", "4KiB",
				"--subscribers", "2", "--writers", "2", "--settle", "0s"}, tt.args...)
			r := runHistoryJSON(t, args...)
			checkPhases(t, r, []string{tt.name}, []int{tt.readers}, false)
			if ph := r.Phases[0]; ph.Busy < 1 || ph.Requests < ph.Busy+int64(ph.Readers) {
				t.Errorf("busy retries %d of %d requests, want at least one", ph.Busy, ph.Requests)
			}
		})
	}
	// Measured through --pid: this process holds the server.
	r := runHistoryJSON(t, "--url", base, "--pid", strconv.Itoa(os.Getpid()), "--collection", "busy-pid", "--commits", "5",
		"--value-bytes", "1KiB", "--phases", "get1", "--settle", "0s")
	checkPhases(t, r, []string{"get1"}, []int{1}, runtime.GOOS == "linux")
	if r.Respawned || r.Phases[0].Memory != nil && r.Phases[0].Memory.PID != os.Getpid() {
		t.Errorf("respawned %v, memory %+v", r.Respawned, r.Phases[0].Memory)
	}
	// Again without writing: the readers read what is there.
	r = runHistoryJSON(t, "--url", base, "--collection", "busy-pid", "--write=false", "--phases", "get3", "--settle", "0s")
	if h := r.Histories[0]; len(r.Histories) != 1 || h.Commits != 0 || h.Written != 0 || h.Head != 5 {
		t.Errorf("histories %+v", r.Histories[0])
	}
	checkPhases(t, r, []string{"get3"}, []int{3}, false)
	if code, _, stderr := runBench(t, "history", "--url", base, "--collection", "never-written", "--write=false"); code != 1 || !strings.Contains(stderr, "is empty") {
		t.Errorf("--write=false on an empty collection: exit %d, %q", code, stderr)
	}
}

// startBusyServer starts an in-process server whose reads of history share
// a memory budget, and returns its URL and arm: once armed, the whole
// budget is held until half a second after the next request for history.
func startBusyServer(t *testing.T) (base string, arm func()) {
	t.Helper()
	mem := limit.NewMemory(8 << 20)
	const wait = 100 * time.Millisecond
	var (
		mu   sync.Mutex
		hold *limit.Hold
	)
	busy := func(api http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := r.URL.Path
			if strings.HasSuffix(p, "/changes") || strings.HasSuffix(p, "/events") || p == "/v1/ws" {
				mu.Lock()
				if h := hold; h != nil {
					hold = nil
					time.AfterFunc(500*time.Millisecond, h.Release)
				}
				mu.Unlock()
			}
			api.ServeHTTP(w, r)
		})
	}
	base = startServer(t, memstore.New(nil), []viewsync.Option{viewsync.WithFanout(fanout.Options{Memory: mem, MemoryWait: wait})},
		httpapi.Options{Memory: mem, MemoryWait: wait}, busy)
	return base, func() {
		h, err := mem.Reserve(t.Context(), mem.Max(), mem.Max())
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		hold = h
		mu.Unlock()
	}
}
