package presence

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// Kind is what an Event says.
type Kind uint8

// The kinds of events.
const (
	// Sync replaces what the follower knew: the members (or, in
	// count-only mode, their count). It comes first, and again whenever
	// the follower fell too far behind or the mode changed.
	Sync Kind = iota + 1
	// Join: a member is now present.
	Join
	// Update: a present member's record or state changed.
	Update
	// Leave: a member is no longer present.
	Leave
	// Count: in count-only mode, the number of members changed.
	Count
)

// String returns the kind's name on the wire.
func (k Kind) String() string {
	switch k {
	case Sync:
		return "sync"
	case Join:
		return "join"
	case Update:
		return "update"
	case Leave:
		return "leave"
	case Count:
		return "count"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Member is one member's presence as subscribers see it.
type Member struct {
	// ID names the member: stable for an authenticated principal across
	// its sessions and collections, a random one per session otherwise.
	ID string `json:"member"`
	// Record is the record the presence is about, or empty.
	Record string `json:"record,omitempty"`
	// State is the state the member set last, a compact JSON object.
	State json.RawMessage `json:"state"`
}

// Event is one change of a collection's presence, as a follower gets it.
type Event struct {
	Kind       Kind
	Collection string
	// Member is the member of a Join, Update or Leave (a Leave's State is
	// nil).
	Member Member
	// Members are a Sync's members; nil in count-only mode.
	Members []Member
	// Count is the number of members, of a Sync and a Count: those the
	// follower sees, or in count-only mode all of them.
	Count int
	// Self is, on a Sync, the follower's own member id, when its session
	// is known.
	Self string
	// Session is, on the first Sync of a follower opened with a session,
	// that session's id: the secret its client publishes with over HTTP.
	Session string
	// TTL is, with Session, how long the session's presence lasts without
	// a heartbeat.
	TTL time.Duration
}

// AppendMessage appends ev's message, the same JSON on every transport:
//
//	{"type":"presence","sub"?,"collection","event":"sync","members"?,"count","self"?,"session"?,"ttl"?}
//	{"type":"presence","sub"?,"collection","event":"join"|"update","member","record"?,"state"}
//	{"type":"presence","sub"?,"collection","event":"leave","member"}
//	{"type":"presence","sub"?,"collection","event":"count","count"}
//
// sub is the WebSocket subscription's id, left out when empty.
func AppendMessage(dst []byte, ev *Event, sub string) []byte {
	dst = protocol.AppendHead(dst, protocol.TypePresence, protocol.MessageID{}, sub)
	dst = append(dst, `,"collection":"`...)
	dst = append(dst, ev.Collection...) // names need no escaping
	dst = append(dst, `","event":"`...)
	dst = append(dst, ev.Kind.String()...)
	dst = append(dst, '"')
	switch ev.Kind {
	case Sync:
		if ev.Members != nil {
			dst = append(dst, `,"members":[`...)
			for i := range ev.Members {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = appendMember(append(dst, '{'), &ev.Members[i])
				dst = append(dst, '}')
			}
			dst = append(dst, ']')
		}
		dst = append(dst, `,"count":`...)
		dst = strconv.AppendInt(dst, int64(ev.Count), 10)
		if ev.Self != "" {
			dst = append(dst, `,"self":"`...)
			dst = append(dst, ev.Self...) // ids need no escaping
			dst = append(dst, '"')
		}
		if ev.Session != "" {
			dst = append(dst, `,"session":"`...)
			dst = append(dst, ev.Session...)
			dst = append(dst, `","ttl":`...)
			dst = strconv.AppendInt(dst, ev.TTL.Milliseconds(), 10)
		}
	case Join, Update:
		dst = appendMember(append(dst, ','), &ev.Member)
	case Leave:
		dst = append(dst, `,"member":"`...)
		dst = append(dst, ev.Member.ID...)
		dst = append(dst, '"')
	case Count:
		dst = append(dst, `,"count":`...)
		dst = strconv.AppendInt(dst, int64(ev.Count), 10)
	}
	return append(dst, '}')
}

// appendMember appends m's fields, without braces.
func appendMember(dst []byte, m *Member) []byte {
	dst = append(dst, `"member":"`...)
	dst = append(dst, m.ID...)
	dst = append(dst, '"')
	if m.Record != "" {
		dst = append(dst, `,"record":`...)
		rec, _ := json.Marshal(m.Record) // a valid id: always encodes
		dst = append(dst, rec...)
	}
	dst = append(dst, `,"state":`...)
	return append(dst, m.State...)
}
