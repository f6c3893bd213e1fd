// Package protocol defines viewsync's wire types and their JSON encoding:
// records, ops, commits, snapshots, catch-ups, cursors, WebSocket messages
// and errors. It is the vocabulary the store, the hub, the transports and
// the tests share, and it depends on nothing else in the module.
//
// The JSON shapes are those of the HTTP API v1 (see the README). What
// clients send is read strictly (decode.go) after one scanner checked it
// (scan.go); what the server sends splices JSON already encoded instead
// of encoding it again (a commit's JSON is written by hand, AppendCommit;
// messages wrap it, or a snapshot's, EncodeReset). Values are
// json.RawMessage, compact once normalized (Limits.NormalizeOp): the
// transports rely on that to frame a commit on one line.
package protocol
