package bench

// The baseline of --baseline: a minimal raw broadcaster, run as the hidden
// 'viewsync bench baseline-server' (this executable again) and spawned
// like 'viewsync serve' is for --spawn, so that its CPU time and memory
// are read from /proc the same way. It stands for what this machine can do
// at best with the same connections and the same load: no store, no
// subscriptions, no encoding per subscriber. The same subscribers and the
// same writer measure it unchanged:
//
//   - PUT (or POST) of any path is a commit: the next version, the body as
//     the value of a put of the path's last segment. Its frames are encoded
//     once (an SSE event and a WebSocket text frame, in the shape of
//     viewsync's) and queued to every connection.
//   - GET of a path ending in /version answers the head.
//   - GET with Upgrade: websocket is a WebSocket (RFC 6455: the upgrade,
//     then unmasked text frames; what the client sends is never read).
//   - Any other GET is an SSE stream.
//
// A subscription starts with a reset at the current version. Each
// connection has a queue and a goroutine that, at each wakeup, writes all
// its queued frames in one write (writev): the known ceiling technique.

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/viewsync/viewsync/internal/cliflag"
	"github.com/viewsync/viewsync/internal/rlimit"

	"github.com/viewsync/viewsync/internal/netio"
)

// baselineEpoch is the epoch the baseline's streams name.
const baselineEpoch = "baseline"

// baselineServer runs 'viewsync bench baseline-server'.
func baselineServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench baseline-server", "Usage: viewsync bench baseline-server [flags]\n\nThe raw broadcaster that 'viewsync bench fanout --baseline' and 'idle --baseline' measure as the machine's ceiling; not for use by hand.\n\n", stderr)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on")
	if err := cliflag.Parse(fs, args); err != nil {
		return err
	}
	rlimit.RaiseOpenFiles()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newRawHub(), ReadHeaderTimeout: 30 * time.Second}
	fmt.Fprintf(stdout, "viewsync listening on http://%s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// rawHub is the raw broadcaster. Its connections are spread over shards,
// one per CPU; each shard has a pump goroutine and the frames committed
// since its last sweep. A commit queues its frames to every shard and wakes
// its pump, which writes to each connection all the frames queued since
// its last wakeup in one non-blocking writev. A connection holds no
// goroutine: only when its socket is full does it get a backlog (its own
// queue) and a goroutine that writes the backlog, all of it at each turn,
// until it is empty.
type rawHub struct {
	// mu orders the commits and the subscriptions.
	mu      sync.Mutex
	version uint64
	shards  []*rawShard
	next    int
}

// rawFrame is a commit's frames, one per transport.
type rawFrame struct{ sse, ws []byte }

type rawShard struct {
	mu    sync.Mutex
	conns map[*rawConn]struct{}
	// pending are the frames since the last sweep.
	pending []rawFrame
	wake    chan struct{}
}

// rawConn is one subscriber's connection.
type rawConn struct {
	c   net.Conn
	raw syscall.RawConn
	ws  bool
	sh  *rawShard
	// skip, guarded by the shard's mu, is how many of the shard's pending
	// frames came before the connection's reset.
	skip int

	mu sync.Mutex
	// backlog holds what the socket did not take yet; slow says a
	// goroutine is writing it.
	backlog [][]byte
	slow    bool
	closed  atomic.Bool
}

func newRawHub() *rawHub {
	h := &rawHub{}
	for range runtime.GOMAXPROCS(0) {
		sh := &rawShard{conns: map[*rawConn]struct{}{}, wake: make(chan struct{}, 1)}
		h.shards = append(h.shards, sh)
		go sh.run()
	}
	return h
}

func (h *rawHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPut || r.Method == http.MethodPost:
		h.commit(w, r)
	case r.Method != http.MethodGet:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	case strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
		h.subscribe(w, r, true)
	case strings.HasSuffix(r.URL.Path, "/version"):
		// The bare conditional GET: an ETag, and 304 while it matches.
		h.mu.Lock()
		v := h.version
		h.mu.Unlock()
		etag := `"` + baselineEpoch + ":" + strconv.FormatUint(v, 10) + `"`
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"epoch":%q,"version":%d}`, baselineEpoch, v)
	default:
		h.subscribe(w, r, false)
	}
}

// collectionOf returns the collection a path names
// (/v1/collections/NAME/...), or "bench".
func collectionOf(p string) string {
	if rest, ok := strings.CutPrefix(p, "/v1/collections/"); ok {
		if name, _, _ := strings.Cut(rest, "/"); name != "" {
			return name
		}
	}
	return "bench"
}

func (h *rawHub) commit(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		return
	}
	var value bytes.Buffer
	if err := json.Compact(&value, body); err != nil {
		http.Error(w, "the body is not JSON", http.StatusBadRequest)
		return
	}
	id, coll := path.Base(r.URL.Path), collectionOf(r.URL.Path)
	h.mu.Lock()
	h.version++
	v := h.version
	at := time.Now().UTC().Format(time.RFC3339Nano)
	ops := fmt.Appendf(nil, `[{"op":"put","id":%q,"value":%s}]`, id, value.Bytes())
	sse := fmt.Appendf(nil, "id: %s:%d\nevent: commit\ndata: {\"version\":%d,\"at\":%q,\"ops\":%s}\n\n", baselineEpoch, v, v, at, ops)
	ws := wsTextFrame(fmt.Appendf(nil, `{"type":"commit","collection":%q,"epoch":%q,"version":%d,"at":%q,"ops":%s}`, coll, baselineEpoch, v, at, ops))
	for _, sh := range h.shards {
		sh.mu.Lock()
		sh.pending = append(sh.pending, rawFrame{sse: sse, ws: ws})
		sh.mu.Unlock()
		select {
		case sh.wake <- struct{}{}:
		default:
		}
	}
	h.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"version":%d,"record":{"id":%q,"value":%s,"version":%d}}`, v, id, value.Bytes(), v)
}

// wsGUID is RFC 6455's key suffix.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// wsAccept returns the Sec-WebSocket-Accept of a key.
func wsAccept(key string) string {
	sum := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// wsTextFrame returns a final, unmasked text frame of payload.
func wsTextFrame(payload []byte) []byte {
	n := len(payload)
	b := make([]byte, 0, n+10)
	b = append(b, 0x81)
	switch {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

func (h *rawHub) subscribe(w http.ResponseWriter, r *http.Request, ws bool) {
	var header string
	if ws {
		key := r.Header.Get("Sec-WebSocket-Key")
		if key == "" || r.Header.Get("Sec-WebSocket-Version") != "13" {
			http.Error(w, "not a WebSocket upgrade", http.StatusBadRequest)
			return
		}
		header = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + wsAccept(key) + "\r\n"
		for _, p := range r.Header.Values("Sec-WebSocket-Protocol") {
			if first, _, _ := strings.Cut(p, ","); strings.TrimSpace(first) != "" {
				header += "Sec-WebSocket-Protocol: " + strings.TrimSpace(first) + "\r\n"
				break
			}
		}
		header += "\r\n"
	} else {
		header = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "cannot hijack", http.StatusInternalServerError)
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	conn.SetDeadline(time.Time{})
	c := &rawConn{c: conn, ws: ws}
	if sc, ok := conn.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	coll := collectionOf(r.URL.Path)
	h.mu.Lock()
	defer h.mu.Unlock()
	v := h.version
	var reset []byte
	if ws {
		reset = wsTextFrame(fmt.Appendf(nil, `{"type":"reset","collection":%q,"epoch":%q,"version":%d,"reset":true,"records":[]}`, coll, baselineEpoch, v))
	} else {
		reset = fmt.Appendf(nil, "id: %s:%d\nevent: reset\ndata: {\"collection\":%q,\"epoch\":%q,\"version\":%d,\"reset\":true,\"records\":[]}\n\n", baselineEpoch, v, coll, baselineEpoch, v)
	}
	c.sh = h.shards[h.next%len(h.shards)]
	h.next++
	if !c.write([][]byte{[]byte(header), reset}) {
		return
	}
	c.sh.mu.Lock()
	c.skip = len(c.sh.pending)
	c.sh.conns[c] = struct{}{}
	c.sh.mu.Unlock()
}

// run sweeps the shard's connections at each wakeup.
func (sh *rawShard) run() {
	var conns []*rawConn
	var skips []int
	bufs := make([][]byte, 0, 64)
	for range sh.wake {
		sh.mu.Lock()
		batch := sh.pending
		sh.pending = nil
		conns, skips = conns[:0], skips[:0]
		for c := range sh.conns {
			conns = append(conns, c)
			skips = append(skips, c.skip)
			c.skip = 0
		}
		sh.mu.Unlock()
		for i, c := range conns {
			bufs = bufs[:0]
			for _, f := range batch[min(skips[i], len(batch)):] {
				if c.ws {
					bufs = append(bufs, f.ws)
				} else {
					bufs = append(bufs, f.sse)
				}
			}
			c.write(bufs)
		}
		clear(conns)
		clear(bufs[:cap(bufs)])
	}
}

// write sends bufs after the connection's backlog: at once, without
// waiting, when it has none; what the socket does not take goes to the
// backlog, written by a goroutine of its own. It reports whether the
// connection is still open.
func (c *rawConn) write(bufs [][]byte) bool {
	if len(bufs) == 0 {
		return !c.closed.Load()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slow {
		c.backlog = append(c.backlog, bufs...)
		return true
	}
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	n := 0
	if c.raw != nil {
		var err error
		if n, err = tryWritev(c.raw, bufs); err != nil {
			c.drop()
			return false
		}
	}
	if n == total {
		return true
	}
	c.backlog = append(c.backlog, unwritten(bufs, n)...)
	c.slow = true
	go c.drain()
	return true
}

// drain writes the backlog, all of it at each turn, until it is empty.
func (c *rawConn) drain() {
	for {
		c.mu.Lock()
		q := c.backlog
		c.backlog = nil
		if len(q) == 0 {
			c.slow = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		bufs := net.Buffers(q)
		if _, err := bufs.WriteTo(c.c); err != nil {
			c.drop()
			return
		}
	}
}

// drop forgets the connection and closes it.
func (c *rawConn) drop() {
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	if c.sh != nil {
		c.sh.mu.Lock()
		delete(c.sh.conns, c)
		c.sh.mu.Unlock()
	}
	c.c.Close()
}

// unwritten returns what is left of bufs once n bytes of them are written.
func unwritten(bufs [][]byte, n int) [][]byte {
	var out [][]byte
	for _, b := range bufs {
		if n >= len(b) {
			n -= len(b)
			continue
		}
		out = append(out, b[n:])
		n = 0
	}
	return out
}

// tryWritev writes bufs without waiting where the platform can, as
// viewsync's live path does; elsewhere nothing, and every frame goes
// through the backlog's blocking writes.
func tryWritev(raw syscall.RawConn, bufs [][]byte) (int, error) {
	if !netio.Supported {
		return 0, nil
	}
	return netio.TryWritev(raw, bufs)
}
