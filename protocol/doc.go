// Package protocol defines viewsync's wire types and their JSON encoding:
// records, ops, commits, snapshots, catch-ups, cursors and errors. It is the
// vocabulary shared by the store, the hub, the transports, the bench tool and
// tests, and it depends on nothing else in the module.
//
// The JSON shapes are those of the HTTP API v1 contract in DESIGN.md,
// including the WebSocket messages (messages.go). What clients send is
// read strictly (decode.go), after one scanner has checked it (scan.go);
// what the server sends is encoded by splicing shared, already-encoded
// JSON instead of encoding it again.
//
// Caveats: values are carried as json.RawMessage and are expected to be
// compact (no insignificant whitespace), which Normalize guarantees; the
// transports rely on that to frame commits on one line.
package protocol
