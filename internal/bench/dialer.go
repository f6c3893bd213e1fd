package bench

// The subscribers' connections: the dialer that spreads them over the
// source addresses, and what a subscriber reads of each message.

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/viewsync/viewsync/protocol"
)

// benchDialer opens the subscribers' connections, spreading them over the
// source addresses round-robin.
type benchDialer struct {
	ips  []net.IP
	next atomic.Uint64
	// client carries every subscriber's request: SSE streams and WebSocket
	// handshakes, each on a connection of its own.
	client *http.Client
	tr     *http.Transport
}

func newBenchDialer(ips []net.IP) *benchDialer {
	d := &benchDialer{ips: ips}
	d.tr = &http.Transport{
		DialContext:        d.dial,
		DisableCompression: true,
		// Streams never go back to the pool; keep none.
		MaxIdleConnsPerHost: -1,
	}
	d.client = &http.Client{Transport: d.tr}
	return d
}

// dial opens a TCP connection from the next source address.
func (d *benchDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	if len(d.ips) > 0 {
		nd.LocalAddr = &net.TCPAddr{IP: d.ips[(d.next.Add(1)-1)%uint64(len(d.ips))]}
	}
	return nd.DialContext(ctx, network, addr)
}

func (d *benchDialer) closeIdle() { d.tr.CloseIdleConnections() }

// eventKind tells what a benchEvent is.
type eventKind uint8

const (
	evCommit eventKind = iota
	evReset
	evCatchUp
	// evProgress moves a view's cursor past commits that did not concern
	// it.
	evProgress
)

// benchEvent is what a subscriber needs of one message: its kind, the
// version it brings the subscriber to, and for a commit the writer's send
// time found in its value. Commits leave epoch empty (it changes only with
// a reset), so that reading one allocates nothing for it.
type benchEvent struct {
	kind    eventKind
	epoch   string
	version uint64
	// after is a view's commit's "after": no commit between it and
	// version concerned the view. 0 for a whole collection's commits.
	after uint64
	// sentNS is the "sent_ns" of the commit's first value, 0 if none.
	sentNS int64
}

// benchStream is one subscription's connection.
type benchStream interface {
	// next returns the next event.
	next() (benchEvent, error)
	close()
}

// open subscribes to collection, or to its view by the filter where (""
// for the whole collection), over transport ("sse" or "ws"), from cur
// (nil: starting with a reset). The stream lives as long as ctx.
func (d *benchDialer) open(ctx context.Context, transport, base, collection, where string, cur *protocol.Cursor) (benchStream, error) {
	if transport == "ws" {
		return d.openWS(ctx, base, collection, where, cur)
	}
	return d.openSSE(ctx, base, collection, where, cur)
}
