package bench

// The readers of the history scenario: by pages of changes, over SSE or
// over WebSocket, each resuming from its cursor when sent away.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync/protocol"
)

// historyReader is one client reading a history from version 0 to the
// head: by pages of changes or as a subscriber, resuming from its cursor
// whenever it is sent away.
type historyReader struct {
	target *benchTarget
	coll   string
	head   uint64

	// at is the version reached; done is set once it is the head; busy
	// counts the busy answers. They are read by the progress line.
	at   atomic.Uint64
	done atomic.Bool
	busy atomic.Int64

	// Owned by the reader's goroutine until it has ended.
	epoch                                    string
	commits, missing, dups, catchUps, resets int64
	errs, requests, bytes                    int64
	lastErr                                  error
}

// readAttempt is one request or stream of a reader. It returns how long to
// wait before the next when the server sent the reader away busy.
type readAttempt func(ctx context.Context) (retryAfter time.Duration, busy bool, err error)

// run makes attempts until the reader is at the head, ctx ends, or
// historyMaxFails attempts in a row failed without progress.
func (r *historyReader) run(ctx context.Context, attempt readAttempt) {
	fails := 0
	for r.at.Load() < r.head {
		from := r.at.Load()
		wait, busy, err := attempt(ctx)
		if ctx.Err() != nil {
			r.lastErr = fmt.Errorf("at version %d of %d when the phase ended: %w", r.at.Load(), r.head, ctx.Err())
			return
		}
		if r.at.Load() > from {
			fails = 0
		}
		switch {
		case busy:
			r.busy.Add(1)
		case err != nil:
			r.errs++
			r.lastErr = err
			if fails++; fails >= historyMaxFails {
				return
			}
			wait = time.Second
		default:
			continue
		}
		sleepFor(ctx, wait)
	}
	r.done.Store(true)
}

// commit takes a commit of version v.
func (r *historyReader) commit(v uint64) {
	switch last := r.at.Load(); {
	case v == last+1:
		r.commits++
	case v <= last:
		r.dups++
		return
	default:
		r.missing += int64(v - last - 1)
	}
	r.at.Store(v)
}

// reset takes a reset to version v of epoch.
func (r *historyReader) reset(epoch string, v uint64) {
	r.resets++
	r.epoch = epoch
	r.at.Store(v)
}

// catchUp takes a compacted catch-up to version v.
func (r *historyReader) catchUp(epoch string, v uint64) error {
	if epoch != r.epoch {
		return fmt.Errorf("catch-up of epoch %s at cursor %s:%d", epoch, r.epoch, r.at.Load())
	}
	r.catchUps++
	r.at.Store(max(r.at.Load(), v))
	return nil
}

// getPage reads the next page of changes after the reader's cursor.
func (r *historyReader) getPage(ctx context.Context, client *http.Client) (time.Duration, bool, error) {
	after := r.at.Load()
	u := changesURL(r.target.base, r.coll, protocol.Cursor{Epoch: r.epoch, Version: after}, 0)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, false, err
	}
	what := fmt.Sprintf("GET changes after %d", after)
	return r.send(client, req, what, func(body io.Reader) (time.Duration, bool, error) {
		ans, err := decodeChanges(body, r.commit)
		if err != nil {
			return 0, false, fmt.Errorf("%s: %w", what, err)
		}
		switch {
		case ans.reset:
			r.reset(ans.epoch, ans.version)
		case ans.compacted:
			err = r.catchUp(ans.epoch, ans.version)
		case ans.epoch != r.epoch:
			err = fmt.Errorf("%s: commits of epoch %s, not %s", what, ans.epoch, r.epoch)
		case ans.commits == 0:
			err = fmt.Errorf("%s: no commits before the head %d", what, r.head)
		}
		return 0, false, err
	})
}

// send sends one request of the reader, req (named what in errors), and
// hands the body of a 200 to read; any other answer is a refusal. It
// counts the request and the bytes read.
func (r *historyReader) send(client *http.Client, req *http.Request, what string, read readBody) (time.Duration, bool, error) {
	r.requests++
	resp, err := client.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	body := &countingReader{r: resp.Body}
	defer func() { r.bytes += body.n }()
	if resp.StatusCode != http.StatusOK {
		return refusal(resp, body, what)
	}
	return read(body)
}

// readBody reads the body of an answer; it returns how long to wait
// before the next attempt when the server sent the reader away busy.
type readBody func(body io.Reader) (retryAfter time.Duration, busy bool, err error)

// readSSE subscribes over Server-Sent Events from the reader's cursor and
// reads until the head, an "unavailable" error event (busy) or the
// stream's end.
func (r *historyReader) readSSE(ctx context.Context) (time.Duration, bool, error) {
	cur := protocol.Cursor{Epoch: r.epoch, Version: r.at.Load()}
	req, err := eventsRequest(ctx, r.target.base, r.coll, "", &cur)
	if err != nil {
		return 0, false, err
	}
	return r.send(r.target.dialer.client, req, "GET events from "+cur.String(), func(body io.Reader) (time.Duration, bool, error) {
		sr := sseReader{br: bufio.NewReaderSize(body, 64<<10)}
		var data []byte
		for {
			id, event, err := sr.next(func(event, value []byte) {
				// Only an error's data is needed; commits' may be large.
				if string(event) == "error" {
					data = append(data[:0], value...)
				}
			})
			if err != nil {
				return 0, false, fmt.Errorf("the stream ended at version %d: %w", r.at.Load(), err)
			}
			busy, err := r.sseEvent(id, event, data)
			if busy || err != nil {
				return time.Second, busy, err
			}
			if r.at.Load() >= r.head {
				return 0, false, nil
			}
			data = data[:0]
		}
	})
}

// sseEvent takes one event; busy is true for an "unavailable" error.
func (r *historyReader) sseEvent(id, event, data []byte) (busy bool, err error) {
	if string(event) == "error" {
		var eb protocol.ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != nil && eb.Error.Code == protocol.CodeUnavailable {
			return true, nil
		}
		return false, fmt.Errorf("error event at version %d: %s", r.at.Load(), data)
	}
	cur, err := protocol.ParseCursor(string(id))
	if err != nil {
		return false, fmt.Errorf("%s event: %w", event, err)
	}
	switch string(event) {
	case "commit":
		r.commit(cur.Version)
	case "reset":
		r.reset(cur.Epoch, cur.Version)
	case "catchup":
		return false, r.catchUp(cur.Epoch, cur.Version)
	default:
		return false, fmt.Errorf("unknown event %q", event)
	}
	return false, nil
}

// readWS subscribes over a WebSocket connection of its own from the
// reader's cursor and reads until the head, a close 1013 or an
// "unavailable" error (busy), or the connection's end.
func (r *historyReader) readWS(ctx context.Context) (time.Duration, bool, error) {
	cur := protocol.Cursor{Epoch: r.epoch, Version: r.at.Load()}
	r.requests++
	s, err := r.target.dialer.openWS(ctx, r.target.base, r.coll, "", &cur)
	if err != nil {
		if se := gws.StatusError(0); errors.As(err, &se) && int(se) == http.StatusServiceUnavailable {
			return time.Second, true, nil
		}
		return 0, false, err
	}
	defer s.close()
	in := &countingReader{r: s.br}
	defer func() { r.bytes += in.n }()
	var buf []byte
	for {
		msg, err := readWSText(in, s.conn, buf)
		var closed *wsClosed
		switch {
		case errors.As(err, &closed) && closed.code == statusTryAgainLater:
			return time.Second, true, nil
		case errors.As(err, &closed):
			return 0, false, fmt.Errorf("the server closed the connection at version %d: %d", r.at.Load(), closed.code)
		case err != nil:
			return 0, false, fmt.Errorf("the connection ended at version %d: %w", r.at.Load(), err)
		}
		busy, err := r.wsMessage(msg)
		if busy || err != nil {
			return time.Second, busy, err
		}
		if r.at.Load() >= r.head {
			return 0, false, nil
		}
		buf = msg[:0]
	}
}

// statusTryAgainLater is the WebSocket close code 1013, Try Again Later:
// the server sends it when it is too busy reading history.
const statusTryAgainLater gws.StatusCode = 1013

// wsMessage takes one message; busy is true for an "unavailable" error.
// Commits are read by looking up their version; the rest are decoded
// without their records.
func (r *historyReader) wsMessage(b []byte) (busy bool, err error) {
	if bytes.HasPrefix(b, commitPrefix) {
		v := extractInt(b, `"version":`)
		if v <= 0 {
			return false, fmt.Errorf("commit without a version: %.200s", b)
		}
		r.commit(uint64(v))
		return false, nil
	}
	var m struct {
		Type    string        `json:"type"`
		Epoch   string        `json:"epoch"`
		Version uint64        `json:"version"`
		Code    protocol.Code `json:"code"`
		Message string        `json:"message"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return false, fmt.Errorf("message %.200s: %w", b, err)
	}
	switch m.Type {
	case protocol.TypeReset:
		r.reset(m.Epoch, m.Version)
	case protocol.TypeCatchUp:
		return false, r.catchUp(m.Epoch, m.Version)
	case protocol.TypeError:
		if m.Code == protocol.CodeUnavailable {
			return true, nil
		}
		return false, fmt.Errorf("server error %s: %s", m.Code, m.Message)
	default:
		return false, fmt.Errorf("unexpected %s message", m.Type)
	}
	return false, nil
}
