package ws_test

import (
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/limit"
)

// TestHistoryMemoryBusy: a subscription whose read of history waits in
// vain for the history memory bound closes the connection with 1013 (try
// again later); once the memory is free the client resumes from its cursor.
func TestHistoryMemoryBusy(t *testing.T) {
	mem := limit.NewMemory(64 << 10)
	e := newEnv(t, &config{hub: []viewsync.Option{viewsync.WithFanout(fanout.Options{PageBytes: 64 << 10, Memory: mem, MemoryWait: 20 * time.Millisecond})}})
	for i := range 5 {
		e.put("items", "r", `{"n":`+string(rune('0'+i))+`}`)
	}
	hd, err := e.collection("items").Head(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	taken, err := mem.Reserve(t.Context(), 64<<10, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	c := e.dial()
	c.subscribe("items", u64(0), hd.Epoch)
	c.expectClosed(ws.StatusCode(1013))
	taken.Release()

	c = e.dial()
	c.subscribe("items", u64(0), hd.Epoch)
	v := newView("items")
	v.epoch, v.version = hd.Epoch, 0
	for v.version < 5 {
		v.apply(t, c.next())
	}
	if v.commits != 5 {
		t.Fatalf("resumed with %d commits, want 5", v.commits)
	}
}
