package push

import (
	"fmt"
	"net/url"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/presence"
	"github.com/viewsync/viewsync/protocol"
)

// ParsePresence reads the presence parameter of a stream's query:
// presence=1 (or true) asks for the collection's presence on the stream,
// 0, false or none does not. Errors wrap protocol.ErrBadQuery.
func ParsePresence(rawQuery string) (bool, error) {
	q, err := protocol.ParseQuery(rawQuery, "presence")
	if err != nil {
		return false, err
	}
	v, ok := param(q, "presence")
	if !ok {
		return false, nil
	}
	switch v {
	case "1", "true":
		return true, nil
	case "0", "false", "":
		return false, nil
	}
	return false, fmt.Errorf("%w: presence=%s (want 1 or 0)", protocol.ErrBadQuery, url.QueryEscape(v))
}

// Subject returns the name pr is present under: its subject, or empty for
// an anonymous principal (a member of its own per session).
func Subject(pr auth.Principal) string {
	if pr.Anonymous {
		return ""
	}
	return pr.Subject
}

// Presence is a subscriber's presence follower, and the session it
// opened for its client, if it opened one. Stop it when the subscriber
// goes.
type Presence struct {
	fol *presence.Follower
	// own is the session opened for a stream, closed with it; nil when
	// the session is the connection's (WebSocket).
	own *presence.Session
}

// FollowPresence follows coll's presence for a subscriber whose principal
// is pr and whose connection's session is sess, within the rows pr may
// read (never a client's own filter), writing each event's message
// (presence.AppendMessage, sub being a WebSocket subscription's id) with
// write. When write fails, failed is called on a goroutine of its own:
// it ends the connection.
func FollowPresence(coll *viewsync.Collection, pr auth.Principal, sess *presence.Session, sub string, write func(msgs [][]byte) error, failed func(error)) (*Presence, error) {
	rows := coll.Unfiltered().Where(pr.Where(auth.Read, coll.Name()))
	fol, err := rows.FollowPresence(sess, func(evs []presence.Event) error {
		msgs := make([][]byte, len(evs))
		for i := range evs {
			msgs[i] = presence.AppendMessage(nil, &evs[i], sub)
		}
		if err := write(msgs); err != nil {
			go failed(err)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Presence{fol: fol}, nil
}

// Stop stops the follower, and closes the session it opened: that
// presence leaves at once. Nothing is written once it returns.
func (p *Presence) Stop() {
	if p == nil {
		return
	}
	p.fol.Stop()
	if p.own != nil {
		p.own.Close()
	}
}

// presenceRequest is whether a stream asked for its collection's presence
// (presence=1), and the collection.
type presenceRequest struct {
	want bool
	coll *viewsync.Collection
}

// streamPresence follows the presence of a stream's collection when its
// request asked for it, writing through w; fail ends the stream. It
// returns nil when the stream did not ask.
func (h *Handler) streamPresence(req presenceRequest, pr auth.Principal, w writer, fail func(error)) (*Presence, error) {
	if !req.want {
		return nil, nil
	}
	sess, err := h.hub.Presence().Open(Subject(pr))
	if err != nil {
		return nil, err
	}
	enc := h.opts.Encoder
	p, err := FollowPresence(req.coll, pr, sess, "", func(msgs [][]byte) error {
		var bufs [][]byte
		for _, m := range msgs {
			bufs = append(bufs, enc.Presence(m)...)
		}
		return w.WriteBuffers(nil, bufs...)
	}, fail)
	if err != nil {
		sess.Close()
		return nil, err
	}
	p.own = sess
	return p, nil
}
