package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// TestServeHistoryBounded: through the server with small history bounds,
// a page of large commits stops at --page-bytes and is still immutable,
// and many streams resuming over a long history at once all get every
// commit once, in order — those that find --history-memory full are told
// "unavailable" and resume from their cursor.
func TestServeHistoryBounded(t *testing.T) {
	addr, _, _ := startServe(t, "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--demo=false",
		"--page-bytes", "64KiB", "--history-memory", "128KiB", "--history-wait", "20ms")
	base := "http://" + addr + "/v1/collections/h"
	const commits = 60
	value := fmt.Sprintf("%q", strings.Repeat("v", 20<<10))
	for i := range commits {
		if a := send(t, http.MethodPut, base+"/records/r"+strconv.Itoa(i%5), value); a.status != http.StatusOK {
			t.Fatalf("PUT %d: %d %s", i, a.status, a.body)
		}
	}
	var hd protocol.Head
	getJSONOK(t, base+"/version", &hd)

	resp, err := http.Get(base + "/changes?after=0&epoch=" + hd.Epoch)
	if err != nil {
		t.Fatal(err)
	}
	var page protocol.Changes
	err = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("changes: %d %v", resp.StatusCode, err)
	}
	if n := len(page.Commits); n == 0 || n > 3 || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Fatalf("first page of 20 KiB commits under --page-bytes 64KiB: %d commits, Cache-Control %q; want 1 to 3, immutable", n, resp.Header.Get("Cache-Control"))
	}

	var wg sync.WaitGroup
	busy := make(chan int, 12)
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			busy <- resumeAll(t, base, hd.Epoch, commits)
		}()
	}
	wg.Wait()
	close(busy)
	total := 0
	for n := range busy {
		total += n
	}
	t.Logf("12 streams resumed over %d commits of 20 KiB; %d told to come back later", commits, total)

	// The budget and what is held are exported, and every read gave its
	// share back. A stream the client has just closed may still hold a
	// page until its handler sees the close, so the gauge is read until it
	// drops to zero.
	limit, held := "viewsync_history_memory_limit_bytes 131072\n", "viewsync_history_memory_bytes 0\n"
	var body string
	for deadline := time.Now().Add(30 * time.Second); ; {
		body = getText(t, "http://"+addr+"/metrics")
		if strings.Contains(body, held) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{limit, held} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no line %q", strings.TrimSpace(want))
		}
	}
}

// getText answers the body of a GET that must succeed.
func getText(t *testing.T, url string) string {
	t.Helper()
	a := send(t, http.MethodGet, url, "")
	if a.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, a.status, a.body)
	}
	return a.body
}

// resumeAll follows the SSE stream from EPOCH:0 until version last,
// reconnecting from its cursor after an "unavailable" end, and checks that
// every commit comes once, in order. It returns how many busy ends it met.
func resumeAll(t *testing.T, base, epoch string, last uint64) (busy int) {
	cur := uint64(0)
	deadline := time.Now().Add(time.Minute)
	for cur < last {
		if time.Now().After(deadline) {
			t.Errorf("stream at %d of %d after a minute", cur, last)
			return busy
		}
		req, _ := http.NewRequest(http.MethodGet, base+"/events", nil)
		req.Header.Set("Last-Event-ID", epoch+":"+strconv.FormatUint(cur, 10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("events: %v", err)
			return busy
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var event, id string
		for sc.Scan() && cur < last {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = line[len("event: "):]
			case strings.HasPrefix(line, "id: "):
				id = line[len("id: "):]
			case strings.HasPrefix(line, "data: "):
				switch event {
				case "commit":
					if want := epoch + ":" + strconv.FormatUint(cur+1, 10); id != want {
						t.Errorf("got commit %s, want %s", id, want)
						resp.Body.Close()
						return busy
					}
					cur++
				case "error":
					if !strings.Contains(line, `"code":"unavailable"`) {
						t.Errorf("error event %s", line)
						resp.Body.Close()
						return busy
					}
					busy++
				default:
					t.Errorf("event %q at %d, want commits", event, cur)
					resp.Body.Close()
					return busy
				}
			}
		}
		resp.Body.Close()
	}
	return busy
}

func getJSONOK(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
