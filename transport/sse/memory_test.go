package sse_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/limit"
	"github.com/viewsync/viewsync/protocol"
)

// TestHistoryMemoryBusyHTTP2: over HTTP/2, where a stream writes through
// its ResponseWriter, a stream whose read of history waits in vain for the
// history memory bound ends with an "error" event saying unavailable (the
// client resumes from its cursor later); once the memory is free, the same
// cursor resumes. The hijacked path is in the push suite (e2e TestPushBusy).
func TestHistoryMemoryBusyHTTP2(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  config
	}{
		{"http2", config{HTTP2: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mem := limit.NewMemory(64 << 10)
			tt.cfg.Fanout = fanout.Options{PageBytes: 64 << 10, Memory: mem, MemoryWait: 20 * time.Millisecond}
			e := newEnv(t, tt.cfg)
			for i := range 5 {
				e.put("r", i)
			}
			epoch := e.head().Epoch
			taken, err := mem.Reserve(t.Context(), 64<<10, 64<<10)
			if err != nil {
				t.Fatal(err)
			}
			c := e.newClient("items", "after=0&epoch="+epoch, nil)
			ev := c.nextEvent()
			var body struct {
				Error struct{ Code, Message string }
			}
			if ev.Event != "error" || json.Unmarshal([]byte(ev.Data), &body) != nil || body.Error.Code != string(protocol.CodeUnavailable) {
				t.Fatalf("got event %q %s, want an error event with code unavailable", ev.Event, ev.Data)
			}
			c.expectEnd()
			taken.Release()
			c = e.newClient("items", "after=0&epoch="+epoch, nil)
			c.expectCommits(epoch, 1, 5)
		})
	}
}
