package viewsync_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/idem"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/store/memstore"
)

// BenchmarkIdempotency measures what an Idempotency-Key costs a write: a
// Put of a 100-byte value through the Go API without a key, with a fresh
// key each time (the rule's path: the memory table, the store's key
// lookup, the key and its answer recorded in the commit's transaction),
// and a replayed retry. On bbolt with fsync (as served), bbolt without
// fsync (the CPU and write cost alone) and memstore.
func BenchmarkIdempotency(b *testing.B) {
	for _, engine := range []string{"bbolt", "bbolt-nosync", "memstore"} {
		for _, mode := range []string{"nokey", "key", "replay"} {
			b.Run(engine+"/"+mode, func(b *testing.B) { benchIdempotency(b, engine, mode) })
		}
	}
}

func benchIdempotency(b *testing.B, engine, mode string) {
	var st store.Store
	switch engine {
	case "memstore":
		st = memstore.New(nil)
	default:
		bs, err := boltstore.Open(filepath.Join(b.TempDir(), "bench.db"), &boltstore.Options{NoSync: engine == "bbolt-nosync"})
		if err != nil {
			b.Fatal(err)
		}
		st = bs
	}
	defer st.Close()
	hub, err := viewsync.New(st, viewsync.WithIdempotency(viewsync.IdempotencyOptions{MaxKeys: 1 << 20}))
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Close()
	col, _ := hub.Collection("bench")
	ctx := context.Background()
	value := []byte(fmt.Sprintf(`{"name":"a product","price":12.5,"pad":"%060d"}`, 0))
	render := func(cm viewsync.Commit) viewsync.Answer {
		return viewsync.Answer{Status: http.StatusOK, ETag: `"` + strconv.FormatUint(cm.Version, 10) + `"`, Body: value}
	}
	put := func(key string) {
		if key == "" {
			if _, err := col.Put(ctx, "x", value); err != nil {
				b.Fatal(err)
			}
			return
		}
		o := viewsync.OnceRecord(idem.Scope("ana", false), key, "PUT", "bench", "x", "", "", value)
		_, _, err := hub.Once(ctx, o, func(ctx context.Context, k *viewsync.Keyed) (viewsync.Answer, error) {
			rec, err := col.Put(ctx, "x", value, k.Record(render))
			if err != nil {
				return viewsync.Answer{}, err
			}
			return render(viewsync.Commit{Version: rec.Version}), nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if mode == "replay" {
		put("the-key")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		switch mode {
		case "nokey":
			put("")
		case "key":
			put("key-" + strconv.Itoa(i))
		case "replay":
			put("the-key")
		}
	}
}
