package natskv_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkLoadRead measures the two direct gets a shared-layout load can
// read a small collection with, on one stream of 100,000 collections of
// three messages each (file storage, one server): next by subject from
// the stream's first sequence in a batch (the server goes on to the
// stream's end looking for more), and the last message of each of the
// collection's subjects (multi_last, answered from the subject index).
// Each is timed for a collection written first, in the middle and last;
// ns/op is one read. It does not depend on the store's layout: run it
// with VIEWSYNC_TEST_NATS_LAYOUT=shared, and a count, e.g. -benchtime 20x.
func BenchmarkLoadRead(b *testing.B) {
	o := serverOptions(b.TempDir())
	o.SyncAlways = false // only the reads are measured
	srv := startServer(b, o)
	js := testJetStream(b, srv.ClientURL())
	nc := js.Conn()
	ctx := b.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "L", Subjects: []string{"L.*.*.>"}, AllowDirect: true, MaxMsgsPerSubject: 1}); err != nil {
		b.Fatal(err)
	}
	const colls = 100000
	for i := range colls {
		for _, s := range []string{"e", "r.a", "c.1.0"} {
			if _, err := js.PublishAsync(fmt.Sprintf("L.c%d.ep.%s", i, s), []byte("x")); err != nil {
				b.Fatal(err)
			}
		}
		if i%1000 == 999 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()

	read := func(b *testing.B, req map[string]any) int {
		body, _ := json.Marshal(req)
		inbox := nats.NewInbox()
		ch := make(chan *nats.Msg, 1100)
		sub, err := nc.ChanSubscribe(inbox, ch)
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := nc.PublishRequest("$JS.API.DIRECT.GET.L", inbox, body); err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			select {
			case m := <-ch:
				switch m.Header.Get("Status") {
				case "":
					n++
				case "204", "404":
					return n
				default:
					b.Fatalf("status %s %s", m.Header.Get("Status"), m.Header.Get("Description"))
				}
			case <-time.After(10 * time.Second):
				b.Fatal("no answer")
			}
		}
	}
	for _, at := range []struct {
		name string
		i    int
	}{{"first", 10}, {"middle", colls / 2}, {"last", colls - 10}} {
		filter := fmt.Sprintf("L.c%d.>", at.i)
		for _, how := range []struct {
			name string
			req  map[string]any
		}{
			{"next_by_subj", map[string]any{"seq": 1, "batch": 256, "next_by_subj": filter}},
			{"multi_last", map[string]any{"multi_last": []string{filter}}},
		} {
			b.Run(at.name+"/"+how.name, func(b *testing.B) {
				for b.Loop() {
					if n := read(b, how.req); n != 3 {
						b.Fatalf("%d messages, want 3", n)
					}
				}
			})
		}
	}
}
