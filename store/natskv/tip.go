package natskv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// A live follower whose consumer is lost follows on with a new one (see
// coll.resume), but making a consumer needs the cluster's meta leader:
// when the server that crashed led both the stream and the meta layer, the
// stream has a new leader, and takes commits, seconds before a consumer
// can be made. Meanwhile the follower reads the stream's new messages
// itself, with direct gets that any replica answers (streams made with
// AllowDirect, as this package makes them), so that commits are answered
// as soon as they are stored.

// tipBatch is the most messages one direct get asks for.
const tipBatch = 256

// tipInterval is how often a lost follower reads the stream (give or take
// a jitter) when it found nothing new.
const tipInterval = 50 * time.Millisecond

// readTipLocked starts the reader of the stream's new messages for f,
// which lost its consumer while live, unless one runs or the stream has no
// direct gets. c.mu must be held.
func (c *coll) readTipLocked(f *follower) {
	if c.tipReader || c.closed || !c.direct.Load() {
		return
	}
	c.tipReader = true
	c.s.wg.Go(func() { c.readTip(f) })
}

// readTip reads the stream's new messages for f until the follower has a
// consumer again (or another follower), or the store closes.
func (c *coll) readTip(f *follower) {
	defer func() {
		c.mu.Lock()
		c.tipReader = false
		c.mu.Unlock()
	}()
	for c.ctx.Err() == nil {
		c.mu.RLock()
		live := c.fol == f && c.lost && !c.closed && f.ld == nil
		from := c.st.lastSeq + 1
		c.mu.RUnlock()
		if !live {
			return
		}
		n, err := c.readFrom(f, from)
		if err != nil {
			c.s.log.Debug("natskv: direct get", "collection", c.name, "from", from, "err", err)
		}
		if n == 0 || err != nil {
			sleep(c.ctx, jitter(tipInterval))
		}
	}
}

// directRequest is a batched direct get: Batch messages from Seq on,
// those on subjects matching NextFor if set; or, with MultiLast, the last
// message of every subject matching it, in stream order, at most
// maxMultiLast of them (else the answer is errTooMany).
type directRequest struct {
	Seq   uint64 `json:"seq"`
	Batch int    `json:"batch"`
	// NextFor limits the batch to the collection's subjects (the shared
	// layout).
	NextFor   string   `json:"next_by_subj,omitempty"`
	MultiLast []string `json:"multi_last,omitempty"`
	// UpToSeq limits a MultiLast get to the messages up to it.
	UpToSeq uint64 `json:"up_to_seq,omitempty"`
}

// maxMultiLast is the most messages a server answers a MultiLast direct
// get with (fixed in nats-server).
const maxMultiLast = 1024

// errTooMany: more subjects match a MultiLast direct get than the server
// answers.
var errTooMany = errors.New("too many subjects for one direct get")

// readFrom reads the stream's messages from sequence from on with one
// batched direct get, and gives them to f as its consumer would. It
// returns how many it took.
func (c *coll) readFrom(f *follower, from uint64) (int, error) {
	ctx, cancel := c.attemptCtx(c.ctx)
	defer cancel()
	filter := ""
	if c.s.shared {
		filter = c.names.filter()
	}
	return c.s.directGet(ctx, c.names.stream, directRequest{Seq: from, Batch: tipBatch, NextFor: filter}, func(m feedMsg) bool {
		msg, ok := f.parse(m.subj, m.hdr, m.data, m.seq)
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.fol != f || !c.lost || c.closed {
			return false // it follows again
		}
		c.takeLocked(f, msg, ok, m.subj)
		return true
	})
}

// directGet reads stream's messages with the direct get req (which any
// replica answers), and passes them to take in order until it returns
// false. It returns how many it passed.
func (s *Store) directGet(ctx context.Context, stream string, req directRequest, take func(feedMsg) bool) (int, error) {
	n, _, err := s.directGetPending(ctx, stream, req, take)
	return n, err
}

// directGetPending is directGet, which also returns how many messages
// the answer left out, as its end tells (0 when the answer was whole, or
// brought nothing).
func (s *Store) directGetPending(ctx context.Context, stream string, req directRequest, take func(feedMsg) bool) (int, uint64, error) {
	nc := s.nc
	inbox := nats.NewInbox()
	// A channel that holds one answer (a batch and its end), not the
	// connection's default of 64Ki messages: a subscription made with
	// SubscribeSync allocates 512 KiB for its channel, and thousands of
	// readers asking every tipInterval allocated gigabytes a second.
	most := req.Batch
	if len(req.MultiLast) > 0 {
		most = maxMultiLast
	}
	ch := make(chan *nats.Msg, most+1)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return 0, 0, fmt.Errorf("subscribe: %w", err)
	}
	defer sub.Unsubscribe()
	body, err := json.Marshal(req)
	if err != nil {
		return 0, 0, err
	}
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, body); err != nil {
		return 0, 0, fmt.Errorf("request: %w", err)
	}
	n := 0
	for {
		var m *nats.Msg
		select {
		case m = <-ch:
		case <-ctx.Done():
			return n, 0, ctx.Err()
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case "204":
			// The end of the batch.
			pending, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return n, pending, nil
		case "404":
			if len(req.MultiLast) > 0 && m.Header.Get("Description") != "No Results" {
				// A multi_last get's messages that failed to load.
				return n, 0, fmt.Errorf("status 404 %s", m.Header.Get("Description"))
			}
			// Nothing (yet) from there.
			return n, 0, nil
		case "413":
			return n, 0, errTooMany
		default:
			return n, 0, fmt.Errorf("status %s %s", status, m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
		if err != nil {
			return n, 0, fmt.Errorf("message without a sequence: %w", err)
		}
		if !take(feedMsg{subj: m.Header.Get("Nats-Subject"), hdr: m.Header, data: m.Data, seq: seq}) {
			return n, 0, nil
		}
		n++
	}
}
