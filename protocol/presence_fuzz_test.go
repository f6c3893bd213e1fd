package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/viewsync/viewsync/protocol"
)

// FuzzDecodePresence checks the presence body and message decoders: they
// never panic, every error is a bad message, and what they accept encodes
// back to what decodes the same (the action, the record, the compact
// state, which is a JSON object).
func FuzzDecodePresence(f *testing.F) {
	for _, s := range []string{
		`{"session":"abc","record":"p7","state":{"editing":"p7","name":"Ana"}}`,
		`{"session":"abc","state":null}`,
		`{"session":"abc"}`,
		`{"session":"abc","state":[1]}`,
		`{"session":"abc","record":"p7"}`,
		`{"session":"a b","state":{}}`,
		`{"session":"abc","state":{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{}}}}}}}}}}`,
		`{"session":"abc","state":{"a":1,"a":2}}`,
		`{"session":"abc","state":{ "x" : "\u00e9" }}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := protocol.DecodePresenceBody(b)
		if err != nil {
			if !errors.Is(err, protocol.ErrBadMessage) {
				t.Fatalf("error not a bad message: %v", err)
			}
		} else {
			check(t, body)
			if body.Session == "" {
				t.Fatal("accepted without a session")
			}
		}
		// The same fields as a WebSocket message.
		var msg []byte
		if i := bytes.IndexByte(b, '{'); i >= 0 {
			msg = append([]byte(`{"type":"presence","collection":"c",`), b[i+1:]...)
		}
		m, err := protocol.DecodeClientMessage(msg)
		if err != nil {
			if !errors.Is(err, protocol.ErrBadMessage) {
				t.Fatalf("message error not a bad message: %v", err)
			}
			return
		}
		pm, ok := m.(*protocol.PresenceMessage)
		if !ok {
			t.Fatalf("decoded a %T", m)
		}
		check(t, pm.PresenceBody)
		out, err := pm.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		again, err := protocol.DecodeClientMessage(out)
		if err != nil {
			t.Fatalf("re-encoded %s: %v", out, err)
		}
		p2 := again.(*protocol.PresenceMessage)
		if p2.Action != pm.Action || p2.Record != pm.Record || !bytes.Equal(p2.State, pm.State) || p2.ID != pm.ID {
			t.Fatalf("round trip: %+v, then %+v", pm, p2)
		}
	})
}

func check(t *testing.T, p protocol.PresenceBody) {
	t.Helper()
	switch p.Action {
	case protocol.PresenceSet:
		var obj map[string]any
		if err := json.Unmarshal(p.State, &obj); err != nil {
			t.Fatalf("state %s: %v", p.State, err)
		}
		var buf bytes.Buffer
		json.Compact(&buf, p.State)
		if !bytes.Equal(buf.Bytes(), p.State) {
			t.Fatalf("state not compact: %s", p.State)
		}
	case protocol.PresenceHeartbeat, protocol.PresenceClear:
		if p.State != nil || p.Record != "" {
			t.Fatalf("%d carries %q %s", p.Action, p.Record, p.State)
		}
	default:
		t.Fatalf("action %d", p.Action)
	}
}
