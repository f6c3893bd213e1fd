package ws_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	gws "github.com/gobwas/ws"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/ws"
)

// readText returns the bytes of the next server message.
func (c *client) readText() string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	op, b, err := c.ReadMessage(ctx)
	if err != nil || op != gws.OpText {
		c.t.Fatalf("read: %v message, %v", op, err)
	}
	return string(b)
}

// TestMessageIDs: the id of a call or a commit, a string or a number as
// in JSON-RPC, comes back in the result or error that answers it byte for
// byte as the client wrote it; an id that is neither, or out of bounds,
// is refused with bad_request naming the problem.
func TestMessageIDs(t *testing.T) {
	e := newEnv(t, &config{ws: ws.Options{MaxBadMessages: 100}})
	if err := e.hub.HandleCall("echo", func(_ context.Context, call *viewsync.Call) (any, error) {
		return call.Arg, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.hub.HandleCall("deny", func(context.Context, *viewsync.Call) (any, error) {
		return nil, &viewsync.CallError{Code: protocol.CodeForbidden, Message: "no"}
	}); err != nil {
		t.Fatal(err)
	}
	c := e.dial()
	version := 0
	for _, id := range []string{
		`1`, `-7`, `0`, `0.50`, `1E+3`, strings.Repeat("9", protocol.MaxNumberIDLen),
		`"a"`, `"1"`, `"\u00e9<&>\/"`, `"` + strings.Repeat("x", protocol.MaxStringIDLen) + `"`,
	} {
		version++
		for _, tc := range []struct{ name, msg, want string }{
			{"call", `{"type":"call","id":` + id + `,"name":"echo","arg":[1]}`,
				`{"type":"result","id":` + id + `,"result":[1],"versions":{}}`},
			{"commit", `{"id":` + id + `,"type":"commit","collection":"c","ops":[{"op":"put","id":"r","value":1}]}`,
				fmt.Sprintf(`{"type":"result","id":%s,"result":{"version":%d},"versions":{"c":%[2]d}}`, id, version)},
			{"failed call", `{"type":"call","id":` + id + `,"name":"deny","arg":null}`,
				`{"type":"error","id":` + id + `,"code":"forbidden","message":`},
			{"failed commit", `{"type":"commit","id":` + id + `,"collection":"c","ops":[{"op":"delete","id":"none"}]}`,
				`{"type":"error","id":` + id + `,"code":"not_found","message":`},
			{"bad call", `{"type":"call","id":` + id + `,"name":"echo"}`,
				`{"type":"error","id":` + id + `,"code":"bad_request","message":`},
		} {
			c.sendText(tc.msg)
			if got := c.readText(); !strings.HasPrefix(got, tc.want) {
				t.Errorf("%s with id %s answered\n %s\nwant\n %s…", tc.name, id, got, tc.want)
			}
		}
	}
	for _, tc := range []struct{ id, problem string }{
		{`null`, `field "id": must be a string or a number, not null`},
		{`true`, `field "id": must be a string or a number, not a boolean`},
		{`{"n":1}`, `field "id": must be a string or a number, not an object`},
		{`[1]`, `field "id": must be a string or a number, not an array`},
		{`""`, `field "id": a string id must be 1-128 bytes, got 0`},
		{`"` + strings.Repeat("x", protocol.MaxStringIDLen+1) + `"`, `field "id": a string id must be 1-128 bytes, got 129`},
		{`1` + strings.Repeat("0", protocol.MaxNumberIDLen), `field "id": a number id must be at most 32 bytes of JSON, got 33`},
	} {
		for _, msg := range []string{
			`{"type":"call","id":` + tc.id + `,"name":"echo","arg":1}`,
			`{"type":"commit","id":` + tc.id + `,"collection":"c","ops":[{"op":"put","id":"r","value":1}]}`,
		} {
			c.sendText(msg)
			got := c.readText()
			if !strings.HasPrefix(got, `{"type":"error","code":"bad_request","message":`) || !strings.Contains(got, strings.ReplaceAll(tc.problem, `"`, `\"`)) {
				t.Errorf("%s answered\n %s\nwant a bad_request without an id saying %s", msg, got, tc.problem)
			}
		}
	}
	// None of the refused commits was applied.
	if r, err := e.collection("c").Get(context.Background(), "r"); err != nil || r.Version != uint64(version) {
		t.Errorf("record r = %+v, %v; want version %d", r, err, version)
	}
}
