// Package push is the one per-connection push machine every push transport
// shares. A transport brings an Encoder (a commit, a catch-up and a reset
// in its wire format) and its handshake; push does the rest.
//
// Handler serves one collection per HTTP request over a StreamEncoder
// (packages sse and ndjson: NewHandler with Options). A multiplexing
// transport (ws) makes its own connection, a Sock, and a Sub per
// subscription (NewSub, then Sub.Run). How a Sub moves between its pump and
// its slow path: docs/architecture.md.
package push
