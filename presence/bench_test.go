package presence_test

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"

	"github.com/viewsync/viewsync/presence"
)

// BenchmarkPresence measures, with 10,000 sessions present in one
// collection (count-only mode, one follower), the heap each present
// session holds and the cost of a heartbeat (Touch) and of a set that
// changes the state (fanned out as a count-only nothing).
func BenchmarkPresence(b *testing.B) {
	const n = 10000
	// Sets unlimited: the benchmark sets each session far more often
	// than SetRate allows a client.
	r, err := presence.New(&presence.Options{SetRate: 1e9})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	f, err := r.Follow("c", presence.FollowOptions{Write: func([]presence.Event) error { return nil }})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Stop()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	sessions := make([]*presence.Session, n)
	state := json.RawMessage(`{"name":"Ana","editing":"p7"}`)
	for i := range sessions {
		s, err := r.Open(fmt.Sprint("user", i))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Set("c", "p7", state); err != nil {
			b.Fatal(err)
		}
		sessions[i] = s
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perSession := float64(after.HeapAlloc-before.HeapAlloc) / n
	b.Run("heartbeat", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			sessions[i%n].Touch("c")
		}
		b.ReportMetric(perSession, "heap-B/present")
	})
	b.Run("set", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			sessions[i%n].Set("c", "p8", json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)))
		}
	})
}
