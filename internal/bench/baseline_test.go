package bench

import (
	"bytes"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func TestBenchWSTextFrame(t *testing.T) {
	for _, tt := range []struct {
		n      int
		header []byte
	}{
		{0, []byte{0x81, 0}},
		{125, []byte{0x81, 125}},
		{126, []byte{0x81, 126, 0, 126}},
		{65535, []byte{0x81, 126, 0xff, 0xff}},
		{65536, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		f := wsTextFrame(bytes.Repeat([]byte("x"), tt.n))
		if !bytes.HasPrefix(f, tt.header) || len(f) != len(tt.header)+tt.n {
			t.Errorf("%d bytes: frame starts % x, %d long; want % x and %d", tt.n, f[:min(len(f), 10)], len(f), tt.header, len(tt.header)+tt.n)
		}
	}
	// RFC 6455, section 1.3.
	if got := wsAccept("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Errorf("wsAccept = %q", got)
	}
}

// TestRawHub runs fanout and idle against the raw broadcaster in this
// process, over both transports: the bench's own subscribers must see
// every commit once, also in frames past 64 KiB.
func TestBenchRawHub(t *testing.T) {
	srv := httptest.NewServer(newRawHub())
	t.Cleanup(srv.Close)
	for _, tt := range []struct {
		transport, valueSize string
	}{{"sse", "100"}, {"ws", "100"}, {"ws", "70000"}, {"sse", "70000"}} {
		r, _ := runJSON[fanoutReport](t, "fanout", "--url", srv.URL, "--transport", tt.transport, "--value-size", tt.valueSize,
			"--subscribers", "10", "--rate", "40", "--duration", "500ms")
		if r.Missing != 0 || r.Duplicated != 0 || r.Deliveries != 10*20 || r.Latency.Samples != 200 || r.Commits != 20 || r.Errors != 0 {
			t.Errorf("%s, %s-byte values: report %+v", tt.transport, tt.valueSize, r)
		}
	}
	for _, transport := range []string{"sse", "ws"} {
		code, stdout, stderr := runBench(t, "idle", "--url", srv.URL, "--transport", transport, "--connections", "25", "--settle", "0s")
		if code != 0 || !strings.Contains(stdout, "25 of 25 established") {
			t.Fatalf("idle %s: exit %d\nstdout: %s\nstderr: %s", transport, code, stdout, stderr)
		}
	}
}

// parseRatio returns the ratio at the end of a comparison row of the
// table ("name  viewsync  baseline  ×R"), or 0.
func parseRatio(table, name string) float64 {
	for line := range strings.Lines(table) {
		if !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		last := f[len(f)-1]
		if r, ok := strings.CutPrefix(last, "×"); ok {
			v, _ := strconv.ParseFloat(r, 64)
			return v
		}
		// A row of the main table by the same name: go on.
	}
	return 0
}
