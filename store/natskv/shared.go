package natskv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// In the shared layout (Options.Layout) every collection of the prefix is
// in one stream, named after the prefix, and a collection is the subjects
// PREFIX.ESCAPED.> of it. What the stream layout reads from a collection's
// stream is read from the collection's messages instead: its epoch is
// that of its newest message (firstEpoch while it has none), its last
// sequence that of its newest message, which its batches expect with
// Nats-Expected-Last-Subject-Sequence over PREFIX.ESCAPED.>; a drop
// publishes the new epoch's start message with that expectation, which
// fences off the old epoch's writers, then purges the collection's older
// messages.

// msgGetRequest asks a stream's leader for one message.
type msgGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
}

// storedMsg is what the shared layout reads of a stored message.
type storedMsg struct {
	subject string
	seq     uint64
	header  nats.Header
}

// errCodeNoMessage is JSNoMessageFoundErr.
const errCodeNoMessage = 10037

// getMsg asks the stream's leader (not a replica, which may lag) for the
// message req names; it returns nil when there is none.
func (c *coll) getMsg(ctx context.Context, req msgGetRequest) (*storedMsg, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("get message: %w", err)
	}
	resp, err := c.s.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+c.names.stream, body)
	if err != nil {
		return nil, fmt.Errorf("get message of stream %s: %w", c.names.stream, err)
	}
	var r struct {
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
		Message *struct {
			Subject string `json:"subject"`
			Seq     uint64 `json:"seq"`
			Header  []byte `json:"hdrs"`
		} `json:"message"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return nil, fmt.Errorf("get message of stream %s: bad answer %q: %w", c.names.stream, resp.Data, err)
	}
	if e := r.Error; e != nil {
		if e.ErrCode == errCodeNoMessage {
			return nil, nil
		}
		return nil, fmt.Errorf("get message of stream %s: %w", c.names.stream,
			&jetstream.APIError{Code: e.Code, ErrorCode: jetstream.ErrorCode(e.ErrCode), Description: e.Description})
	}
	if r.Message == nil {
		return nil, fmt.Errorf("get message of stream %s: no message in %q", c.names.stream, resp.Data)
	}
	m := &storedMsg{subject: r.Message.Subject, seq: r.Message.Seq, header: nats.Header{}}
	if len(r.Message.Header) > 0 {
		if m.header, err = nats.DecodeHeadersMsg(r.Message.Header); err != nil {
			return nil, fmt.Errorf("get message of stream %s: headers of message %d: %w", c.names.stream, m.seq, err)
		}
	}
	return m, nil
}

// lastMsg returns the collection's newest message, nil when it has none.
func (c *coll) lastMsg(ctx context.Context) (*storedMsg, error) {
	return c.getMsg(ctx, msgGetRequest{LastFor: c.names.filter()})
}

// sharedInfo describes the collection in the shared layout: the epoch and
// sequence of its newest message. A collection without messages was never
// written: errNoStream, unless orFirst is set: it is then in its first
// epoch (there is nothing to create: its first batch makes it).
func (c *coll) sharedInfo(ctx context.Context, orFirst bool) (streamInfo, error) {
	m, err := c.lastMsg(ctx)
	if err != nil {
		return streamInfo{}, err
	}
	if m == nil {
		if !orFirst {
			return streamInfo{}, fmt.Errorf("collection %s: %w", c.name, errNoStream)
		}
		return streamInfo{epoch: firstEpoch(c.s.prefix, c.name)}, nil
	}
	e, ok := c.names.epochOf(m.subject)
	if !ok {
		return streamInfo{}, fmt.Errorf("collection %s: message %d on %q is not a viewsync message", c.name, m.seq, m.subject)
	}
	return streamInfo{epoch: e, lastSeq: m.seq, msgs: 1}, nil
}

// replaceShared starts a new history of the collection in the shared
// layout: it publishes the start message of a fresh epoch, expecting the
// collection's newest message, so that batches planned before are
// refused, then purges the collection's messages before it.
func (c *coll) replaceShared(ctx context.Context, old string) error {
	epoch := newEpoch(old)
	for {
		last, err := c.lastMsg(ctx)
		if err != nil {
			return err
		}
		var seq uint64
		if last != nil {
			seq = last.seq
			if e, _ := c.names.epochOf(last.subject); e == epoch {
				epoch = newEpoch(e)
			}
		}
		m := nats.NewMsg(startSubject(c.names.prefix(epoch)))
		m.Header.Set(hdrEnd, "1")
		m.Header.Set(hdrExpectedLastSubjSeq, strconv.FormatUint(seq, 10))
		m.Header.Set(hdrExpectedLastSubjSeqSubj, c.names.filter())
		ack, err := c.s.js.PublishMsg(ctx, m)
		if err != nil {
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) && (apiErr.ErrorCode == errCodeWrongLastSeq || apiErr.ErrorCode == errCodeWrongLastSeqConst) {
				// A batch got in first: start after it.
				sleep(ctx, jitter(minRetry))
				if ctx.Err() != nil {
					return fmt.Errorf("publish the start of %s: %w", c.name, ctx.Err())
				}
				continue
			}
			return fmt.Errorf("publish the start of %s: %w", c.name, err)
		}
		stream, err := c.s.js.Stream(ctx, c.names.stream)
		if err != nil {
			return fmt.Errorf("stream %s: %w", c.names.stream, err)
		}
		if err := stream.Purge(ctx, jetstream.WithPurgeSubject(c.names.filter()), jetstream.WithPurgeSequence(ack.Sequence)); err != nil {
			return fmt.Errorf("purge %s from stream %s: %w", c.name, c.names.stream, err)
		}
		c.announce()
		return nil
	}
}

// announce tells the processes holding the collection as never written
// that it now has messages to follow.
func (c *coll) announce() {
	if err := c.s.nc.Publish(c.names.createdSubject(), nil); err != nil {
		c.s.log.Debug("natskv: announce a collection", "collection", c.name, "err", err)
	}
}

// fateShared is fateOf in the shared layout: the collection's first
// message after the sequence p expects tells, if it is p's, or if it
// expected the same sequence as p (only one of them could be stored).
func (c *coll) fateShared(ctx context.Context, p *plan) (fate, error) {
	ctx, cancel := c.attemptCtx(ctx)
	defer cancel()
	m, err := c.getMsg(ctx, msgGetRequest{Seq: p.expect + 1, NextFor: c.names.filter()})
	if err != nil || m == nil || !strings.HasPrefix(m.subject, c.names.prefix(p.epoch)) {
		return fateUnknown, err
	}
	if m.header.Get(hdrBatchID) == p.id {
		k, err := strconv.Atoi(m.header.Get(hdrBatchSeq))
		if err != nil || k < 1 || k > len(p.msgs) {
			return fateUnknown, fmt.Errorf("message %d of batch %s: bad batch sequence %q", m.seq, p.id, m.header.Get(hdrBatchSeq))
		}
		// A batch is stored whole, in consecutive sequences.
		p.end = m.seq + uint64(len(p.msgs)-k)
		return fateStored, nil
	}
	if m.header.Get(hdrExpectedLastSubjSeqSubj) == c.names.filter() && m.header.Get(hdrExpectedLastSubjSeq) == strconv.FormatUint(p.expect, 10) {
		return fateNot, nil
	}
	return fateUnknown, nil
}
