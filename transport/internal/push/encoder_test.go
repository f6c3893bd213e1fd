package push

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
)

// countingEncoder writes a commit as "<" + its JSON + ">" and counts the
// commits it encodes.
type countingEncoder struct{ n *int }

func (e countingEncoder) Commit(dst []byte, f *fanout.Frame) (out, body, tail []byte) {
	*e.n++
	return append(dst, '<'), f.JSON(), []byte(">")
}
func (countingEncoder) CatchUp(*protocol.CatchUp) ([][]byte, error) { return nil, nil }
func (countingEncoder) Reset(*protocol.Snapshot) ([][]byte, error)  { return nil, nil }
func (countingEncoder) Progress(string, string, uint64) []byte      { return nil }

// TestFormatSharesEncodings: a frame encodes its commit once per Format,
// however many subscribers of it ask at the same time, as the whole
// message; another Format gets an encoding of its own.
func TestFormatSharesEncodings(t *testing.T) {
	f, err := fanout.NewFrame("c", "e", protocol.Commit{Version: 3, Ops: []protocol.Op{{Op: protocol.OpPut, ID: "a", Value: json.RawMessage(`1`)}}})
	if err != nil {
		t.Fatal(err)
	}
	var n1, n2 int
	one, two := NewFormat(countingEncoder{&n1}), NewFormat(countingEncoder{&n2})
	want := "<" + string(f.JSON()) + ">"
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if got := string(f.Encoding(one)); got != want {
				t.Errorf("encoding %q, want %q", got, want)
			}
		})
	}
	wg.Wait()
	if got := string(f.Encoding(two)); got != want {
		t.Errorf("second format: %q, want %q", got, want)
	}
	if n1 != 1 || n2 != 1 {
		t.Errorf("encoded %d and %d times, want once per format", n1, n2)
	}
}
