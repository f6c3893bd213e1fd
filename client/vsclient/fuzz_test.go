package vsclient

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzStreams feeds arbitrary server output to the SSE and NDJSON readers:
// they return changes or errors, never panic, and end at the input's end.
func FuzzStreams(f *testing.F) {
	f.Add([]byte("retry: 2000\n\nid: e1:1\nevent: reset\ndata: {\"epoch\":\"e1\",\"version\":1,\"records\":[{\"id\":\"a\",\"value\":1,\"version\":1}]}\n\n" +
		"id: e1:2\nevent: commit\ndata: {\"version\":2,\"after\":0,\"ops\":[{\"op\":\"delete\",\"id\":\"a\"}]}\n\n: ping\n\n"))
	f.Add([]byte("event: error\ndata: {\"error\":{\"code\":\"unauthorized\",\"message\":\"expired\"}}\n\n"))
	f.Add([]byte(`{"type":"commit","collection":"c","epoch":"e","version":3,"after":1,"ops":[]}` + "\n" + `{"type":"ping"}` + "\n" +
		`{"type":"catchup","epoch":"e","version":9,"compacted":true,"records":[],"deleted":["x"]}` + "\n"))
	f.Add([]byte("id: e:1\r\nevent: progress\r\ndata: {}\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, st := range []stream{
			&sseStream{body: io.NopCloser(nil), br: bufio.NewReaderSize(bytes.NewReader(b), 16)},
			&ndjsonStream{body: io.NopCloser(nil), br: bufio.NewReaderSize(bytes.NewReader(b), 16)},
		} {
			for range len(b) + 2 {
				ch, err := st.next()
				if errors.Is(err, errEnded) {
					break
				}
				if err == nil && ch.Kind == 0 {
					t.Fatalf("a change without a kind from %q", b)
				}
			}
		}
	})
}
