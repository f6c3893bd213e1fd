package protocol_test

import (
	"bytes"
	"testing"

	"github.com/viewsync/viewsync/protocol"
)

// TestWSFrameHeader: the server's frame headers follow RFC 6455's three
// length encodings.
func TestWSFrameHeader(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x81, 0}},
		{125, []byte{0x81, 125}},
		{126, []byte{0x81, 126, 0, 126}},
		{65535, []byte{0x81, 126, 0xff, 0xff}},
		{65536, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
		{1 << 20, []byte{0x81, 127, 0, 0, 0, 0, 0, 0x10, 0, 0}},
	} {
		got := protocol.AppendWSFrameHeader(nil, tc.n)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("header for %d bytes: % x, want % x", tc.n, got, tc.want)
		}
	}
	if !bytes.Equal(protocol.WSPingFrame, []byte{0x89, 0}) {
		t.Errorf("ping frame % x", protocol.WSPingFrame)
	}
}
