package bench

// Reading Server-Sent Events: a subscriber's stream and the small line
// parser that history's readers share.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/viewsync/viewsync/protocol"
)

// sseStream is one subscription's Server-Sent Events stream.
type sseStream struct {
	body io.ReadCloser
	r    sseReader
}

func (d *benchDialer) openSSE(ctx context.Context, base, collection, where string, cur *protocol.Cursor) (*sseStream, error) {
	req, err := eventsRequest(ctx, base, collection, where, cur)
	if err != nil {
		return nil, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("GET events: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return &sseStream{body: resp.Body, r: sseReader{br: bufio.NewReaderSize(resp.Body, 8<<10)}}, nil
}

func (s *sseStream) close() { s.body.Close() }

// next reads the next event.
func (s *sseStream) next() (benchEvent, error) {
	var sent, after int64
	id, event, err := s.r.next(func(_, data []byte) {
		sent, after = extractInt(data, `"sent_ns":`), extractInt(data, `"after":`)
	})
	if err != nil {
		return benchEvent{}, err
	}
	ev, err := parseSSEEvent(id, event, sent)
	ev.after = uint64(after)
	return ev, err
}

// sseReader reads a Server-Sent Events stream with a small line parser.
type sseReader struct {
	br        *bufio.Reader
	id, event []byte
}

// next reads lines up to the end of the next event (a blank line),
// skipping comments and what has no event type (the retry hint), and
// returns the event's id and type, valid until the next call. data is
// called with the type so far and the value of each data line, valid
// during the call only.
func (r *sseReader) next(data func(event, value []byte)) (id, event []byte, err error) {
	r.id, r.event = r.id[:0], r.event[:0]
	for {
		line, err := readLine(r.br)
		if err != nil {
			return nil, nil, err
		}
		if len(line) == 0 {
			if len(r.event) > 0 {
				return r.id, r.event, nil
			}
			r.id = r.id[:0]
			continue
		}
		if line[0] == ':' {
			continue
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(name) {
		case "id":
			r.id = append(r.id[:0], value...)
		case "event":
			r.event = append(r.event[:0], value...)
		case "data":
			data(r.event, value)
		}
	}
}

// readLine returns the next line without its end (LF or CRLF). The slice
// is valid until the next read; lines longer than the buffer are gathered
// into a new one.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = br.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// parseSSEEvent makes an event of an id (EPOCH:VERSION), a type and the
// send time found in its data.
func parseSSEEvent(id, event []byte, sent int64) (benchEvent, error) {
	i := bytes.LastIndexByte(id, ':')
	v, err := strconv.ParseUint(string(id[i+1:]), 10, 64)
	if err != nil {
		return benchEvent{}, fmt.Errorf("%s event with id %q", event, id)
	}
	ev := benchEvent{version: v, sentNS: sent}
	switch string(event) {
	case "commit":
		ev.kind = evCommit
	case "reset":
		ev.kind, ev.epoch = evReset, string(id[:max(i, 0)])
	case "catchup":
		ev.kind, ev.epoch = evCatchUp, string(id[:max(i, 0)])
	case "progress":
		ev.kind = evProgress
	default:
		return benchEvent{}, fmt.Errorf("unknown event %q", event)
	}
	return ev, nil
}
