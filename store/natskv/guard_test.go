package natskv_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/natskv"
)

// TestLogEntryGuard: the server honours Nats-Expected-Last-Subject-Sequence
// inside an atomic batch, on one server and on a replicated stream: a batch
// claiming a version whose log entry exists is refused even though its
// expected last sequence is the stream's, so that it cannot overwrite the
// entry. This is the guard every commit's batch carries on its log subject.
func TestLogEntryGuard(t *testing.T) {
	t.Run("single", func(t *testing.T) {
		srv := startServer(t, serverOptions(t.TempDir()))
		checkLogEntryGuard(t, srv.ClientURL(), 1)
	})
	t.Run("cluster", func(t *testing.T) {
		if testing.Short() {
			t.Skip("cluster")
		}
		cl := newCluster(t)
		checkLogEntryGuard(t, cl.urls(), 3)
	})
}

func checkLogEntryGuard(t *testing.T, url string, replicas int) {
	ctx := t.Context()
	const coll = "guard"
	s := openStore(t, url, natskv.Options{Replicas: replicas})
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; {
		// A new cluster can refuse the first stream ("no suitable peers").
		if _, err = s.Apply(ctx, coll, []protocol.Op{{Op: protocol.OpPut, ID: "a", Value: []byte("1")}}, nil); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}

	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	epoch, last := collTip(ctx, t, nc, coll)
	prefix := "VS." + coll + "." + epoch + "."

	// A batch planned as if version 1 did not exist, at the stream's
	// actual last sequence: only the guard can refuse it.
	batch := func(guard bool) *nats.Msg {
		id := nuid.Next()
		rec := nats.NewMsg(prefix + "r.Yg") // record "b"
		rec.Header.Set("Vs-V", "1")
		rec.Header.Set("Nats-Batch-Id", id)
		rec.Header.Set("Nats-Batch-Sequence", "1")
		expectLast(rec.Header, coll, last)
		rec.Data = []byte("2")
		if err := nc.PublishMsg(rec); err != nil {
			t.Fatal(err)
		}
		entry := nats.NewMsg(prefix + "c.1.0")
		entry.Header.Set("Vs-N", "1")
		entry.Header.Set("Vs-End", "1")
		entry.Header.Set("Nats-Batch-Id", id)
		entry.Header.Set("Nats-Batch-Sequence", "2")
		entry.Header.Set("Nats-Batch-Commit", "1")
		if guard {
			entry.Header.Set("Nats-Expected-Last-Subject-Sequence", "0")
		}
		entry.Data = []byte(`{"version":1,"at":"2026-01-01T00:00:00Z","ops":[{"op":"put","id":"b","value":2}]}`)
		return entry
	}
	resp, err := nc.RequestMsg(batch(true), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var ack struct {
		Error *struct {
			ErrCode int `json:"err_code"`
		} `json:"error"`
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		t.Fatalf("acknowledgement %q: %v", resp.Data, err)
	}
	if ack.Error == nil || ack.Error.ErrCode != 10071 {
		t.Fatalf("a batch claiming an existing log entry got %s, want a wrong last sequence error (10071)", resp.Data)
	}
	if _, now := collTip(ctx, t, nc, coll); now != last {
		t.Fatalf("collection after the refused batch at sequence %d; want it at %d", now, last)
	}

	// The store goes on from version 1.
	a, err := s.Apply(ctx, coll, []protocol.Op{{Op: protocol.OpPut, ID: "b", Value: []byte("3")}}, map[string]uint64{"b": 0})
	if err != nil || a.Commit.Version != 2 {
		t.Fatalf("Apply after the refused batch = %+v, %v; want version 2", a, err)
	}
	ch, err := s.Changes(ctx, coll, 0, store.Page{})
	if err != nil || len(ch.Commits) != 2 || ch.Commits[0].Ops[0].ID != "a" || ch.Commits[1].Ops[0].ID != "b" {
		t.Fatalf("Changes = %+v, %v", ch, err)
	}

	// The control: without the guard the same kind of batch is stored
	// and replaces version 1's log entry, the silent loss it prevents.
	_, last = collTip(ctx, t, nc, coll)
	resp, err = nc.RequestMsg(batch(false), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ack.Error = nil
	if err := json.Unmarshal(resp.Data, &ack); err != nil || ack.Error != nil {
		t.Fatalf("the unguarded batch got %s, want it stored", resp.Data)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, collStream(coll))
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, prefix+"c.1.0")
	if err != nil || m.Sequence != ack.Seq {
		t.Fatalf("log entry 1 = %+v, %v; want the unguarded batch's at %d", m, err, ack.Seq)
	}
}
