package ws

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
)

// TestCommitFrame: a commit's frame is a final text frame whose payload is
// exactly the commit message, for short and long commits alike, and the
// frame's shared encoding and the parts written for a page are the same
// bytes.
func TestCommitFrame(t *testing.T) {
	for _, size := range []int{10, 200, 70_000} {
		c := protocol.Commit{Version: 42, At: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
			Ops: []protocol.Op{{Op: protocol.OpPut, ID: "k", Value: json.RawMessage(strconv.Quote(strings.Repeat("x", size)))}}}
		f, err := fanout.NewFrame("products", "E", c)
		if err != nil {
			t.Fatal(err)
		}
		head, body, tail := encoder{}.Commit(nil, f)
		fr := append(append(append([]byte(nil), head...), body...), tail...)
		msg := []byte(`{"type":"commit","collection":"products","epoch":"E",` + string(f.JSON()[1:]))
		if !bytes.Equal(fr, append(protocol.AppendWSFrameHeader(nil, len(msg)), msg...)) {
			t.Fatalf("value of %d bytes: the frame is not header(%d) + message", size, len(msg))
		}
		m, err := protocol.DecodeServerMessage(msg)
		if err != nil || m.Type != protocol.TypeCommit || m.Collection != "products" || m.Epoch != "E" || m.Version != 42 || len(m.Ops) != 1 {
			t.Fatalf("message %.80s: %+v, %v", msg, m, err)
		}
	}
}
