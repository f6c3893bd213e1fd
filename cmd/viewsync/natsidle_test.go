package main

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestServeNATSIdleAfter: serve --engine nats with --nats-idle-after
// releases the collections written once idle, as
// viewsync_nats_open_collections shows, and serves them again after; in
// each --nats-layout, whose streams the server then holds.
func TestServeNATSIdleAfter(t *testing.T) {
	for _, layout := range []string{"stream", "shared"} {
		t.Run(layout, func(t *testing.T) { testServeNATSIdleAfter(t, layout) })
	}
}

func testServeNATSIdleAfter(t *testing.T, layout string) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats server not ready")
	}
	addr, stderr, stop := startServe(t, "--addr", "127.0.0.1:0", "--demo=false", "--engine", "nats",
		"--nats-url", ns.ClientURL(), "--nats-idle-after", "100ms", "--nats-layout", layout)
	defer stop()
	base := "http://" + addr + "/v1/collections/"
	for _, coll := range []string{"a", "b", "c"} {
		if a := send(t, http.MethodPut, base+coll+"/records/r", `{"n":1}`); a.status != http.StatusOK {
			t.Fatalf("PUT %s: %d %s\n%s", coll, a.status, a.body, stderr)
		}
	}
	const released = "viewsync_nats_open_collections 0\n"
	var body string
	for deadline := time.Now().Add(30 * time.Second); ; {
		body = getText(t, "http://"+addr+"/metrics")
		if strings.Contains(body, released) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(body, released) {
		t.Fatalf("/metrics has no line %q:\n%s", strings.TrimSpace(released), grepLines(body, "viewsync_nats_"))
	}
	if got := getText(t, base+"b/records/r"); !strings.Contains(got, `{"n":1}`) {
		t.Fatalf("GET b/r after its release: %s", got)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var streams []string
	names := js.StreamNames(t.Context())
	for n := range names.Name() {
		streams = append(streams, n)
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(streams)
	want := []string{"VS_a", "VS_b", "VS_c"}
	if layout == "shared" {
		want = []string{"VS"}
	}
	if !slices.Equal(streams, want) {
		t.Fatalf("streams %v, want %v", streams, want)
	}
}

// grepLines returns the lines of s that start with prefix.
func grepLines(s, prefix string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}
