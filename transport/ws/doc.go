// Package ws serves viewsync over WebSocket: GET /v1/ws with the
// subprotocol viewsync.v1, JSON text messages, many subscriptions, commits
// and calls on one connection (see DESIGN.md, "HTTP API v1", and package
// protocol for the messages).
//
// The flow of one connection: no goroutine waits on an idle connection.
// One epoll instance (Linux; elsewhere a goroutine per connection reads)
// watches every connection's socket; when a client has sent something, a
// goroutine reads the frames that arrived with a pooled buffer, decodes
// each message strictly and answers it, then watches the socket again. A
// commit is applied there, so one connection's commits apply in the order
// sent; a call runs in its own goroutine, at most 16 at a time per
// connection. A subscription that is behind (its first reset, a catch-up,
// pages of history) has a goroutine of its own until it is current; then
// it waits in its collection's pump (package transport/internal/push,
// which every push transport shares), whose few goroutines write each
// commit's frame — framed once for every subscriber — to every current
// subscription in one non-blocking writev;
// when commits come fast to many subscribers, several go out in one write
// (Options.FlushInterval).
// An idle connection costs its socket, its subscriptions and a few hundred
// bytes of bookkeeping. Frames are read with github.com/gobwas/ws (which
// also answers the upgrade); the server frames its own messages (server
// frames are unmasked), and every frame it writes, control frames
// included, goes through one serialized socket.
//
// Slow and stalled clients: a socket that cannot take a commit at once
// moves the subscription to its own goroutine, writing under
// Options.WriteTimeout. Meanwhile the hub's fanout buffer moves on; a
// subscription that falls behind it gets one compacted catch-up instead of
// its backlog, so what a connection holds stays bounded. A write that
// takes longer than Options.WriteTimeout means the client is stalled: its
// connection is cut and logged, and the others are not slowed. The client
// resumes from its cursors when it reconnects.
//
// Errors answer the message they concern, with its id when it had one and
// the contract's codes (bad_request, not_found, precondition_failed,
// too_large, rate_limited, …); the connection stays. Only abuse ends it:
// more than Options.MaxBadMessages bad messages (1008), a message over
// Options.MaxMessageBytes (1009), a missing subprotocol or a frame that
// breaks RFC 6455 (1002). Text that is not UTF-8 is a bad message like any
// other.
//
// Close codes the server uses: 1001 when the hub closes or the handler
// shuts down, 1002 without the viewsync.v1 subprotocol or for a broken
// frame, 1008 for too many bad messages, 1009 for an oversize message,
// 1011 when a subscription fails inside the server, 4401 when the token
// expired. The server then waits up to 5s for the client's close frame.
// A stalled or unresponsive client is cut without a close frame, and so
// is one that sends part of a frame and then nothing for
// Options.WriteTimeout.
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
//   - Keep-alive pings go only to connections nothing was written to for a
//     whole Options.PingInterval, from one goroutine for all connections;
//     a client that then sends nothing (not even the pong) within
//     Options.WriteTimeout is cut. The same goroutine closes connections
//     whose token expired (4401), within a quarter of the ping interval.
//   - Acks are validated (the collection must be subscribed to, the version
//     not ahead of what was sent) and recorded per subscription, for a
//     visibility metric still to come.
//   - Origins are checked (same-origin unless Options.OriginPatterns says
//     otherwise, by the CORS middleware's rules, cors.Matcher);
//     Options.Policy authenticates the upgrade and admits every message.
//     Every refusal of the upgrade request carries the contract's JSON
//     error body: 401, 403, 503, 400 for a broken handshake, 426 for a
//     request that is no upgrade or asks for another WebSocket version.
package ws
