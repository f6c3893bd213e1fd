package natskv_test

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// ackProxy sits between a store's NATS connection and its server. Once
// armed, it lets the next batch commit message (the one carrying
// Nats-Batch-Commit) through to the server but nothing more to the client
// on that connection: the server stores the batch, its acknowledgement
// never arrives. cut then closes the connections and refuses new ones
// until allow, so that the test decides what happens before the store
// is back.
type ackProxy struct {
	t      *testing.T
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	armed  bool
	refuse bool
	conns  map[*proxied]struct{}
	// fired is signalled once the armed commit message went through.
	fired chan struct{}
}

// proxied is one proxied client connection.
type proxied struct {
	client, server net.Conn
	// frozen: nothing more goes from the server to the client.
	mu     sync.Mutex
	frozen bool
}

func (p *proxied) close() {
	p.client.Close()
	p.server.Close()
}

// commitMark is what every batch commit message holds, and nothing else
// the store sends.
var commitMark = []byte("Nats-Batch-Commit")

// newAckProxy starts a proxy to target (host:port) and stops it when the
// test ends.
func newAckProxy(t *testing.T, target string) *ackProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ackProxy{t: t, ln: ln, target: target, conns: map[*proxied]struct{}{}, fired: make(chan struct{}, 1)}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

// URL is the proxy's NATS URL.
func (p *ackProxy) URL() string { return "nats://" + p.ln.Addr().String() }

// arm makes the next commit message the one whose acknowledgement is lost.
func (p *ackProxy) arm() {
	p.mu.Lock()
	p.armed = true
	p.mu.Unlock()
}

// cut closes every proxied connection and refuses new ones until allow.
func (p *ackProxy) cut() {
	p.mu.Lock()
	p.refuse = true
	for c := range p.conns {
		c.close()
	}
	p.mu.Unlock()
}

// allow lets connections through again.
func (p *ackProxy) allow() {
	p.mu.Lock()
	p.refuse = false
	p.mu.Unlock()
}

func (p *ackProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		pc := &proxied{client: c, server: s}
		p.mu.Lock()
		if p.refuse {
			p.mu.Unlock()
			pc.close()
			continue
		}
		p.conns[pc] = struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.up(pc) })
		p.wg.Go(func() {
			p.down(pc)
			p.mu.Lock()
			delete(p.conns, pc)
			p.mu.Unlock()
		})
	}
}

// up copies from the client to the server, watching for the armed commit.
func (p *ackProxy) up(pc *proxied) {
	defer pc.close()
	buf := make([]byte, 64<<10)
	var tail []byte // the end of the previous read, for a mark split across reads
	for {
		n, err := pc.client.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			p.mu.Lock()
			hit := p.armed && bytes.Contains(append(tail, chunk...), commitMark)
			if hit {
				p.armed = false
			}
			p.mu.Unlock()
			if hit {
				pc.mu.Lock()
				pc.frozen = true
				pc.mu.Unlock()
			}
			if _, err := pc.server.Write(chunk); err != nil {
				return
			}
			if hit {
				p.fired <- struct{}{}
			}
			tail = append(tail[:0], chunk[max(0, n-len(commitMark)):]...)
		}
		if err != nil {
			return
		}
	}
}

// down copies from the server to the client until the connection freezes,
// then discards.
func (p *ackProxy) down(pc *proxied) {
	defer pc.close()
	buf := make([]byte, 64<<10)
	for {
		n, err := pc.server.Read(buf)
		if n > 0 {
			pc.mu.Lock()
			frozen := pc.frozen
			pc.mu.Unlock()
			if !frozen {
				if _, err := pc.client.Write(buf[:n]); err != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}
