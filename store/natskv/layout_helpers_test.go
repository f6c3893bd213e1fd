package natskv_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/viewsync/viewsync/store/natskv"
)

// testShared reports whether the tests run in the shared layout.
func testShared() bool { return natskv.LayoutUnderTest() == natskv.LayoutShared }

// collStream returns the name of the stream that holds the collection
// coll (of prefix VS, a name without dots).
func collStream(coll string) string {
	if testShared() {
		return "VS"
	}
	return "VS_" + coll
}

// collTip returns the epoch of the collection coll and the sequence of its
// last message, as the stream's leader tells; last is 0 when the
// collection has no message (or no stream).
func collTip(ctx context.Context, t *testing.T, nc *nats.Conn, coll string) (epoch string, last uint64) {
	t.Helper()
	if !testShared() {
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		st, err := js.Stream(ctx, collStream(coll))
		if err != nil {
			t.Fatal(err)
		}
		info := st.CachedInfo()
		return info.Config.Metadata["viewsync.epoch"], info.State.LastSeq
	}
	req, _ := json.Marshal(map[string]string{"last_by_subj": "VS." + strings.ReplaceAll(coll, ".", "~") + ".>"})
	resp, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.VS", req)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Error *struct {
			ErrCode int `json:"err_code"`
		} `json:"error"`
		Message *struct {
			Subject string `json:"subject"`
			Seq     uint64 `json:"seq"`
		} `json:"message"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		t.Fatal(err)
	}
	if r.Error != nil {
		if r.Error.ErrCode == 10037 { // no message
			return "", 0
		}
		t.Fatalf("last message of %s: %s", coll, resp.Data)
	}
	return strings.Split(r.Message.Subject, ".")[2], r.Message.Seq
}

// expectLast sets on h, the header of a batch's first message, that the
// collection coll's last message is at seq, as the store's batches do.
func expectLast(h nats.Header, coll string, seq uint64) {
	if testShared() {
		h.Set("Nats-Expected-Last-Subject-Sequence", strconv.FormatUint(seq, 10))
		h.Set("Nats-Expected-Last-Subject-Sequence-Subject", "VS."+coll+".>")
		return
	}
	h.Set("Nats-Expected-Last-Sequence", strconv.FormatUint(seq, 10))
}
