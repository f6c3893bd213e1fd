// Package ws serves viewsync over WebSocket: GET /v1/ws with the
// subprotocol viewsync.v1, JSON text messages, many subscriptions, commits
// and calls on one connection (see DESIGN.md, "HTTP API v1", and package
// protocol for the messages).
//
// The flow of one connection: a reader goroutine decodes each client
// message strictly and answers it. A subscribe starts a goroutine that
// turns the events of a fanout subscription (a reset first when the client
// has no cursor, then commits, or a catch-up when it fell behind) into
// messages; commits travel as the frames fanout encoded once for every
// subscriber. A commit is applied by the reader itself, so one
// connection's commits apply in the order sent; a call runs in its own
// goroutine, at most 16 at a time per connection. Every outgoing message
// goes through one bounded queue to the connection's single writer.
//
// Slow and stalled clients: when a client reads slowly the queue fills,
// the subscription goroutines wait, and the hub's fanout replaces the
// commits they miss with one compacted catch-up, so what a connection
// holds stays bounded by Options.OutboundQueue. A write that takes longer than
// Options.WriteTimeout means the client is stalled: its connection is cut
// and logged, and the others are not slowed. The client resumes from its
// cursors when it reconnects.
//
// Errors answer the message they concern, with its id when it had one and
// the contract's codes (bad_request, not_found, precondition_failed,
// too_large, rate_limited, …); the connection stays. Only abuse ends it:
// more than Options.MaxBadMessages bad messages (1008), a message over
// Options.MaxMessageBytes (1009), a missing subprotocol (1002).
//
// Close codes the server uses: 1001 when the hub closes or the handler
// shuts down, 1002 without the viewsync.v1 subprotocol, 1008 for too many
// bad messages, 1009 for an oversize message, 1011 when a subscription
// fails inside the server. A stalled or unresponsive client is cut without
// a close frame.
//
// Shutting down: Hub.Close ends every subscription, and so closes the
// connections that have one with 1001. Handler.Shutdown closes every
// connection with 1001 and refuses new ones; a server calls both (see
// Handler.Shutdown). http.Server.Shutdown alone does not reach WebSocket
// connections, which are hijacked.
//
// Caveats:
//   - A connection ends only when its calls have returned: call handlers
//     must honour their context, which ends with the connection.
//   - An unsubscribe (or a subscribe replacing a subscription) takes effect
//     for what the server writes after reading it; messages of the old
//     subscription written before may still arrive, so clients apply
//     commits by version and ignore collections they no longer follow.
//   - The outbound queue is bounded in messages, not bytes. Commit frames
//     are shared with every other subscriber; a queued reset or catch-up
//     is the connection's own and as large as what it carries.
//   - Keep-alive pings go only to connections nothing was written to for a
//     whole Options.PingInterval. The WebSocket library gives a ping frame
//     5s to be written, so a client whose socket stays full that long
//     after its last message is cut.
//   - Acks are validated (the collection must be subscribed to, the version
//     not ahead of what was sent) and recorded per subscription, for a
//     visibility metric still to come.
//   - Origins are checked (same-origin unless Options.OriginPatterns says
//     otherwise); authentication is the embedding server's business, before
//     this handler.
package ws
