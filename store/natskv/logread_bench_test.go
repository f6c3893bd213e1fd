package natskv_test

import (
	"fmt"
	"testing"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/natskv"
)

// BenchmarkChanges measures what Options.LogCache costs a reader: the
// time a Changes of the newest 10 or 1,000 commits, or of 10 commits from
// 1,000 back, of a collection of 20,000 retained commits (one 200-byte put each) takes, with every
// commit's ops in memory (LogCache -1) and with the default 64 KiB, the
// older ones read from the stream (one server, file storage). What it
// saves in memory: colstate's BenchmarkShed.
func BenchmarkChanges(b *testing.B) {
	srv := startServer(b, serverOptions(b.TempDir()))
	ctx := b.Context()
	const commits = 20_000
	cfg := store.Config{RetainCommits: commits}
	w := openStore(b, srv.ClientURL(), natskv.Options{Config: cfg})
	value := fmt.Appendf(nil, `"%0190d"`, 0)
	for i := range commits {
		if _, err := w.Apply(ctx, "log", []protocol.Op{{Op: protocol.OpPut, ID: fmt.Sprint("r", i%100), Value: value}}, nil); err != nil {
			b.Fatal(err)
		}
	}
	for _, cache := range []int{-1, 0} {
		name := "cache=all"
		if cache == 0 {
			name = "cache=64KiB"
		}
		r := openStore(b, srv.ClientURL(), natskv.Options{Config: cfg, LogCache: cache, IdleAfter: -1})
		if _, err := r.Head(ctx, "log"); err != nil {
			b.Fatal(err)
		}
		for _, c := range []struct{ n, back int }{{10, 10}, {1000, 1000}, {10, 1000}} {
			b.Run(fmt.Sprintf("%s/commits=%d/back=%d", name, c.n, c.back), func(b *testing.B) {
				for b.Loop() {
					ch, err := r.Changes(ctx, "log", commits-uint64(c.back), store.Page{Commits: c.n})
					if err != nil || len(ch.Commits) != c.n {
						b.Fatalf("Changes: %d commits, %v", len(ch.Commits), err)
					}
				}
			})
		}
	}
}
