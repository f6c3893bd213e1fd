package vsclient

// The transports: one connection of a View, read as a sequence of
// Changes.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"

	gws "github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/viewsync/viewsync/protocol"
)

// stream is one connection of a View.
type stream interface {
	// next returns the next change; an error ends the connection.
	next() (Change, error)
	close()
}

// errEnded is a stream the server ended without saying why (a restart,
// a drain): reconnect.
var errEnded = errors.New("vsclient: the server ended the stream")

// open connects a View's stream from cur (nil: starting with a reset).
func (c *Client) open(ctx context.Context, collection string, where []byte, cur *protocol.Cursor) (stream, error) {
	if c.opts.Transport == WebSocket {
		return c.openWS(ctx, collection, where, cur)
	}
	q := url.Values{}
	if where != nil {
		q.Set("where", string(where))
	}
	if cur != nil {
		q.Set("after", strconv.FormatUint(cur.Version, 10))
		q.Set("epoch", cur.Epoch)
	}
	path, accept := "/events", "text/event-stream"
	if c.opts.Transport == NDJSON {
		path, accept = "/stream", "application/x-ndjson"
	}
	req, err := c.newRequest(ctx, http.MethodGet, c.url("/v1/collections/"+url.PathEscape(collection)+path, q), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, answerError(resp)
	}
	br := bufio.NewReaderSize(resp.Body, 16<<10)
	if c.opts.Transport == NDJSON {
		return &ndjsonStream{body: resp.Body, br: br}, nil
	}
	return &sseStream{body: resp.Body, br: br}, nil
}

// readLine returns the next line without its end (LF or CRLF), at most
// maxAnswer bytes; the slice is valid until the next read.
func readLine(br *bufio.Reader, long *[]byte) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		*long = append((*long)[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(*long) > maxAnswer {
				return nil, fmt.Errorf("vsclient: a line of over %d bytes", maxAnswer)
			}
			line, err = br.ReadSlice('\n')
			*long = append(*long, line...)
		}
		line = *long
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errEnded
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// sseStream reads Server-Sent Events.
type sseStream struct {
	body io.ReadCloser
	br   *bufio.Reader
	long []byte
}

func (s *sseStream) close() { s.body.Close() }

func (s *sseStream) next() (Change, error) {
	var id, event string
	var data []byte
	for {
		line, err := readLine(s.br, &s.long)
		if err != nil {
			return Change{}, err
		}
		if len(line) == 0 {
			if event == "" {
				id, data = "", data[:0]
				continue // the retry hint, or an event without a type
			}
			return sseChange(id, event, data)
		}
		if line[0] == ':' {
			continue // a ping
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(name) {
		case "id":
			id = string(value)
		case "event":
			event = string(value)
		case "data":
			if len(data) > 0 {
				data = append(data, '\n')
			}
			data = append(data, value...)
		}
	}
}

// sseChange decodes one event.
func sseChange(id, event string, data []byte) (Change, error) {
	var cur protocol.Cursor
	if event != "error" {
		var err error
		if cur, err = protocol.ParseCursor(id); err != nil {
			return Change{}, fmt.Errorf("vsclient: %s event with id %q: %w", event, id, err)
		}
	}
	bad := func(err error) (Change, error) {
		return Change{}, fmt.Errorf("vsclient: %s event: %w", event, err)
	}
	switch event {
	case "commit":
		var c protocol.Commit
		if err := json.Unmarshal(data, &c); err != nil {
			return bad(err)
		}
		return commitChange(cur.Epoch, c.Version, c.After, c), nil
	case "reset":
		var s protocol.Snapshot
		if err := json.Unmarshal(data, &s); err != nil {
			return bad(err)
		}
		return Change{Kind: Reset, Epoch: s.Epoch, Version: s.Version, Records: s.Records}, nil
	case "catchup":
		var cu protocol.CatchUp
		if err := json.Unmarshal(data, &cu); err != nil {
			return bad(err)
		}
		return Change{Kind: CatchUp, Epoch: cu.Epoch, Version: cu.Version, Records: cu.Records, Deleted: cu.Deleted}, nil
	case "progress":
		return Change{Kind: Progress, Epoch: cur.Epoch, Version: cur.Version}, nil
	case "error":
		var body protocol.ErrorBody
		if err := json.Unmarshal(data, &body); err != nil || body.Error == nil {
			return bad(fmt.Errorf("not an error body: %.200s", data))
		}
		return Change{}, &Error{Code: body.Error.Code, Message: body.Error.Message}
	}
	return bad(errors.New("unknown event type"))
}

// commitChange makes a commit's Change; after nil means version-1.
func commitChange(epoch string, version uint64, after *uint64, c protocol.Commit) Change {
	a := version - 1
	if after != nil {
		a = *after
	}
	return Change{Kind: CommitKind, Epoch: epoch, Version: version, After: a, At: c.At, Ops: c.Ops}
}

// messageChange makes the Change of a WebSocket or NDJSON server message.
func messageChange(m protocol.ServerMessage) (Change, error) {
	switch m.Type {
	case protocol.TypeCommit:
		return commitChange(m.Epoch, m.Version, m.After, protocol.Commit{At: m.At, Ops: m.Ops}), nil
	case protocol.TypeReset:
		return Change{Kind: Reset, Epoch: m.Epoch, Version: m.Version, Records: m.Records}, nil
	case protocol.TypeCatchUp:
		return Change{Kind: CatchUp, Epoch: m.Epoch, Version: m.Version, Records: m.Records, Deleted: m.Deleted}, nil
	case protocol.TypeProgress:
		return Change{Kind: Progress, Epoch: m.Epoch, Version: m.Version}, nil
	case protocol.TypeError:
		return Change{}, &Error{Code: m.Code, Message: m.Message}
	}
	return Change{}, fmt.Errorf("vsclient: unexpected %s message", m.Type)
}

// pingPrefix starts the keep-alive line of an NDJSON stream.
var pingPrefix = []byte(`{"type":"ping"`)

// ndjsonStream reads newline-delimited JSON messages.
type ndjsonStream struct {
	body io.ReadCloser
	br   *bufio.Reader
	long []byte
}

func (s *ndjsonStream) close() { s.body.Close() }

func (s *ndjsonStream) next() (Change, error) {
	for {
		line, err := readLine(s.br, &s.long)
		if err != nil {
			return Change{}, err
		}
		if len(bytes.TrimSpace(line)) == 0 || bytes.HasPrefix(line, pingPrefix) {
			continue
		}
		m, err := protocol.DecodeServerMessage(line)
		if err != nil {
			return Change{}, fmt.Errorf("vsclient: stream line: %w", err)
		}
		return messageChange(m)
	}
}

// wsStream reads one subscription on a WebSocket connection of its own.
type wsStream struct {
	conn net.Conn
	stop func() bool
}

func (c *Client) openWS(ctx context.Context, collection string, where []byte, cur *protocol.Cursor) (stream, error) {
	u := *c.base
	u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	u.Path += "/v1/ws"
	h := http.Header{}
	t, err := c.token(ctx)
	if err != nil {
		return nil, err
	}
	if t != "" {
		h.Set("Authorization", "Bearer "+t)
	}
	d := gws.Dialer{Protocols: []string{protocol.WSSubprotocol}, Header: gws.HandshakeHeaderHTTP(h)}
	conn, br, hs, err := d.Dial(ctx, u.String())
	if err != nil {
		var status gws.StatusError
		if errors.As(err, &status) {
			return nil, &Error{Status: int(status), Code: statusCode(int(status)), Message: err.Error()}
		}
		return nil, err
	}
	if br != nil {
		gws.PutReader(br) // the server sends nothing before the subscribe
	}
	if hs.Protocol != protocol.WSSubprotocol {
		conn.Close()
		return nil, fmt.Errorf("vsclient: the server did not take subprotocol %s", protocol.WSSubprotocol)
	}
	m := &protocol.SubscribeMessage{Collection: collection, Where: where}
	if cur != nil {
		v := cur.Version
		m.After, m.Epoch = &v, cur.Epoch
	}
	b, err := json.Marshal(m)
	if err == nil {
		err = wsutil.WriteClientText(conn, b)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("vsclient: subscribe: %w", err)
	}
	return &wsStream{conn: conn, stop: context.AfterFunc(ctx, func() { conn.Close() })}, nil
}

// statusCode returns the error code that goes with an HTTP status.
func statusCode(status int) protocol.Code {
	for _, c := range []protocol.Code{protocol.CodeBadRequest, protocol.CodeUnauthorized, protocol.CodeForbidden, protocol.CodeNotFound,
		protocol.CodeMethodNotAllowed, protocol.CodePreconditionFailed, protocol.CodeTooLarge, protocol.CodeUnsupportedMediaType,
		protocol.CodeRateLimited, protocol.CodeBadGateway, protocol.CodeUnavailable, protocol.CodeTimeout} {
		if c.Status() == status {
			return c
		}
	}
	return protocol.CodeInternal
}

func (s *wsStream) close() {
	s.stop()
	s.conn.Close()
}

func (s *wsStream) next() (Change, error) {
	for {
		b, op, err := wsutil.ReadServerData(s.conn)
		if err != nil {
			var closed wsutil.ClosedError
			if errors.As(err, &closed) {
				if closed.Code == gws.StatusNormalClosure || closed.Code == gws.StatusGoingAway {
					return Change{}, errEnded
				}
				return Change{}, fmt.Errorf("vsclient: the server closed the connection: %d %s", closed.Code, closed.Reason)
			}
			return Change{}, err
		}
		if op != gws.OpText {
			continue
		}
		if bytes.HasPrefix(b, pingPrefix) {
			continue
		}
		m, err := protocol.DecodeServerMessage(b)
		if err != nil {
			return Change{}, fmt.Errorf("vsclient: websocket message: %w", err)
		}
		return messageChange(m)
	}
}
