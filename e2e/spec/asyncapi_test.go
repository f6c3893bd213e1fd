package spec_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v4"

	"github.com/viewsync/viewsync/docs"
	"github.com/viewsync/viewsync/protocol"
)

// asyncURL names asyncapi.yaml as a JSON Schema resource, so that the
// schemas' $refs resolve within it.
const asyncURL = "https://viewsync.invalid/asyncapi.json"

// asyncSpec is docs/asyncapi.yaml, with its message schemas compiled.
type asyncSpec struct {
	doc      map[string]any
	compiler *jsonschema.Compiler

	mu      sync.Mutex
	schemas map[string]*jsonschema.Schema
}

// loadAsyncAPI loads docs/asyncapi.yaml, as the server embeds it, and
// checks it: an AsyncAPI 3.0 document whose operations and channels
// refer to messages that exist, each with a payload that compiles as a
// JSON Schema.
func loadAsyncAPI(t *testing.T) *asyncSpec {
	t.Helper()
	var y any
	if err := yaml.Unmarshal(docs.AsyncAPI, &y); err != nil {
		t.Fatalf("asyncapi.yaml: %v", err)
	}
	b, err := json.Marshal(y)
	if err != nil {
		t.Fatalf("asyncapi.yaml as JSON: %v", err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := v.(map[string]any)
	a := &asyncSpec{doc: doc, compiler: jsonschema.NewCompiler(), schemas: map[string]*jsonschema.Schema{}}
	a.compiler.AssertFormat()
	if err := a.compiler.AddResource(asyncURL, doc); err != nil {
		t.Fatal(err)
	}
	if doc["asyncapi"] != "3.0.0" {
		t.Fatalf("asyncapi.yaml: asyncapi is %v, want 3.0.0", doc["asyncapi"])
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] == nil || info["version"] == nil {
		t.Errorf("asyncapi.yaml: info needs a title and a version")
	}
	channels, _ := doc["channels"].(map[string]any)
	if len(channels) == 0 {
		t.Fatal("asyncapi.yaml: no channels")
	}
	for name, ch := range channels {
		msgs, _ := ch.(map[string]any)["messages"].(map[string]any)
		if ch.(map[string]any)["address"] == nil || len(msgs) == 0 {
			t.Errorf("asyncapi.yaml: channel %s needs an address and messages", name)
		}
		for key := range msgs {
			a.message(t, name, key) // resolves, and compiles the payload
		}
	}
	ops, _ := doc["operations"].(map[string]any)
	used := map[string]bool{}
	for name, o := range ops {
		op, _ := o.(map[string]any)
		if act := op["action"]; act != "send" && act != "receive" {
			t.Errorf("asyncapi.yaml: operation %s: action %v", name, act)
		}
		chRef, _ := op["channel"].(map[string]any)["$ref"].(string)
		ch, ok := strings.CutPrefix(chRef, "#/channels/")
		if !ok || channels[ch] == nil {
			t.Errorf("asyncapi.yaml: operation %s: channel %q is none of the document's", name, chRef)
			continue
		}
		msgs, _ := op["messages"].([]any)
		if len(msgs) == 0 {
			t.Errorf("asyncapi.yaml: operation %s has no messages", name)
		}
		for _, m := range msgs {
			ref, _ := m.(map[string]any)["$ref"].(string)
			if !strings.HasPrefix(ref, "#/channels/"+ch+"/messages/") || a.ref(t, m) == nil {
				t.Errorf("asyncapi.yaml: operation %s: message %q is none of its channel's", name, ref)
			}
			used[ref] = true
		}
	}
	for name, ch := range channels {
		for key := range ch.(map[string]any)["messages"].(map[string]any) {
			if ref := "#/channels/" + name + "/messages/" + key; !used[ref] {
				t.Errorf("asyncapi.yaml: no operation sends or receives %s", ref)
			}
		}
	}
	return a
}

// ref resolves a {"$ref":"#/…"} within the document.
func (a *asyncSpec) ref(t *testing.T, v any) map[string]any {
	t.Helper()
	m, _ := v.(map[string]any)
	ref, ok := m["$ref"].(string)
	if !ok {
		return m
	}
	var cur any = a.doc
	for tok := range strings.SplitSeq(strings.TrimPrefix(ref, "#/"), "/") {
		next, ok := cur.(map[string]any)[tok]
		if !ok {
			t.Errorf("asyncapi.yaml: %s does not resolve", ref)
			return nil
		}
		cur = next
	}
	res, _ := cur.(map[string]any)
	return a.ref(t, res)
}

// message returns the location of the message key of channel ch, under
// components/messages, checking that its payload compiles.
func (a *asyncSpec) message(t *testing.T, ch, key string) string {
	t.Helper()
	msgs := a.doc["channels"].(map[string]any)[ch].(map[string]any)["messages"].(map[string]any)
	m, ok := msgs[key].(map[string]any)
	if !ok {
		t.Fatalf("asyncapi.yaml: channel %s has no message %s", ch, key)
	}
	ref, _ := m["$ref"].(string)
	if !strings.HasPrefix(ref, "#/components/messages/") || a.ref(t, m) == nil {
		t.Fatalf("asyncapi.yaml: channel %s: message %s is not a component's: %v", ch, key, m)
	}
	a.schema(t, ref+"/payload")
	return ref
}

// schema compiles the schema at loc, a fragment of the document.
func (a *asyncSpec) schema(t *testing.T, loc string) *jsonschema.Schema {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.schemas[loc]; ok {
		return s
	}
	s, err := a.compiler.Compile(asyncURL + loc)
	if err != nil {
		t.Fatalf("asyncapi.yaml: %s: %v", loc, err)
	}
	a.schemas[loc] = s
	return s
}

// validate checks payload, one message's JSON, against the payload
// schema of message key of channel ch, and headers, when not nil,
// against its headers schema.
func (a *asyncSpec) validate(t *testing.T, ch, key string, payload []byte, headers map[string]any) {
	t.Helper()
	ref := a.message(t, ch, key)
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		t.Errorf("%s %s: not JSON: %v: %s", ch, key, err, payload)
		return
	}
	if err := a.schema(t, ref+"/payload").Validate(v); err != nil {
		t.Errorf("%s message %s breaks asyncapi.yaml: %#v\n%s", ch, key, err, payload)
	}
	if headers != nil {
		if err := a.schema(t, ref+"/headers").Validate(headers); err != nil {
			t.Errorf("%s message %s: its headers break asyncapi.yaml: %#v\n%v", ch, key, err, headers)
		}
	}
}

// rejects checks that payload breaks the schema of message key of
// channel ch: a bad client message the spec must exclude.
func (a *asyncSpec) rejects(t *testing.T, ch, key string, payload []byte) {
	t.Helper()
	ref := a.message(t, ch, key)
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return // not JSON: no schema takes it
	}
	if a.schema(t, ref+"/payload").Validate(v) == nil {
		t.Errorf("%s message %s: asyncapi.yaml takes %s, which the server refuses", ch, key, payload)
	}
}

// typeConsts returns the "type" const of each message of channel ch.
func (a *asyncSpec) typeConsts(t *testing.T, ch string) []string {
	t.Helper()
	var types []string
	msgs := a.doc["channels"].(map[string]any)[ch].(map[string]any)["messages"].(map[string]any)
	for key := range msgs {
		m := a.ref(t, msgs[key])
		payload := a.ref(t, m["payload"])
		props, _ := payload["properties"].(map[string]any)
		typ, _ := props["type"].(map[string]any)
		if c, ok := typ["const"].(string); ok && !slices.Contains(types, c) {
			types = append(types, c)
		}
	}
	slices.Sort(types)
	return types
}

// sseEvent is one event of an event stream.
type sseEvent struct {
	id, event, data string
	hasID           bool
}

// readEvent reads the next event of an event stream, skipping comments
// (pings) and the retry field.
func readEvent(br *bufio.Reader) (sseEvent, error) {
	var ev sseEvent
	seen := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if seen {
				return ev, nil
			}
		case strings.HasPrefix(line, ":"):
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				ev.id, ev.hasID, seen = value, true, true
			case "event":
				ev.event, seen = value, true
			case "data":
				ev.data, seen = ev.data+value, true
			}
		}
	}
}

// checkEvent validates an event against the SSE channel: its data
// against the payload of the message its event names, its id and event
// fields against the message's headers.
func (a *asyncSpec) checkEvent(t *testing.T, ev sseEvent) {
	t.Helper()
	headers := map[string]any{"event": ev.event}
	if ev.hasID {
		headers["id"] = ev.id
	}
	a.validate(t, "events", ev.event, []byte(ev.data), headers)
}

// serverKey returns the key, in channel ch, of the server message b
// (a WebSocket message or an NDJSON line), by its type.
func serverKey(t *testing.T, b []byte) string {
	t.Helper()
	var m struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("server message %s: %v", b, err)
	}
	return m.Type
}

// clientKey returns the key, in the WebSocket channel, of a client
// message of type typ.
func clientKey(typ string) string {
	if typ == protocol.TypeCommit {
		return "commitRequest"
	}
	if typ == protocol.TypePresence {
		return "presenceRequest"
	}
	return typ
}
