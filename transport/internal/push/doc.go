// Package push is the machinery every push transport shares: how one
// subscription's events reach one connection, whatever the wire format.
//
// A transport supplies an Encoder (how a commit, a catch-up and a reset
// are written in its format) and a handshake; push does the rest. A Sub
// follows one fanout.Subscription for one connection: while its client is
// current it waits in its collection's pump (package live), which writes
// each commit's encoding, made once for every subscriber
// (fanout.Frame.Encoding), without blocking; when the socket is full or
// the client fell behind, the Sub moves to a goroutine of its own (the
// slow path), which writes under the stall timeout, reads history (pages,
// a catch-up, a reset), and returns it to the pump once it is current.
// Every write goes through a Sock, which serializes a connection's writes
// and keeps what a non-blocking write left over.
//
// Handler serves the streams of one collection per HTTP request (Server-Sent
// Events, newline-delimited JSON) over a StreamEncoder: admission (the
// read right, the cursor, the connection limit), the response, pings, the
// token's expiry, the end of a stream the server ends (a stall, the history
// memory bound, shutdown) and its log. A multiplexing transport
// (WebSocket) makes its own connection and uses a Sub per subscription.
//
// Caveats: a Sub writes only through its Sock; anything else written to
// the connection must go through the same Sock. Over HTTP/2, or on a
// connection that cannot be written without blocking (TLS), a Handler's
// stream holds a goroutine of its own.
package push
