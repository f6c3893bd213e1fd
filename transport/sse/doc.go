// Package sse serves viewsync's Server-Sent Events transport:
//
//	GET /v1/collections/{c}/events?after=V&epoch=E
//
// A Handler follows one collection per request. It answers with
// Content-Type text/event-stream, flushes the headers and a retry hint at
// once, so that a client knows it is connected, and then writes events:
//
//	id: EPOCH:VERSION
//	event: reset | catchup | commit
//	data: one line of compact JSON
//
// "reset" carries a snapshot {collection, epoch, version, reset, records},
// "catchup" a compacted catch-up {collection, epoch, version, compacted,
// records, deleted} and "commit" one commit {version, at, ops}. Comment
// lines ": ping" keep an idle stream alive. Every event's id is the cursor
// after it, so a browser's EventSource resumes by itself: on reconnect it
// sends the last id as the Last-Event-ID header, which overrides the after
// and epoch query parameters. Without any cursor the stream starts with a
// reset.
//
// The handler is a handshake and an encoder over the push machinery
// (package transport/internal/push) that every push transport shares: each
// commit's event is encoded once and written to every current stream by
// its collection's pump, without a goroutine per stream on HTTP/1.1 (the
// connection is hijacked; the response says Connection: close and has no
// chunked encoding); a stream that is behind, or whose socket is full, gets
// a goroutine of its own until it is current, writing under
// Options.WriteTimeout. Over HTTP/2 each stream is served by its handler
// goroutine, flushing through the ResponseWriter.
//
// A client too slow for the topic's bounded buffer gets one catch-up
// instead of its backlog; a client whose writes block longer than
// Options.WriteTimeout is cut off and resumes from its last id when it
// reconnects.
//
// # Caveats
//
//   - Mount the handler with a pattern that names the collection {c}, such
//     as mux.Handle("GET /v1/collections/{c}/events", h): it reads the
//     name with r.PathValue("c"). Mounted elsewhere the name is empty and
//     every request is refused with 400.
//   - Streams end only when the client goes away, a write stalls, or the
//     hub closes. Hijacked streams are invisible to http.Server.Shutdown,
//     and HTTP/2 ones hold their handlers, so close the hub (hub.Close)
//     when shutting down, for example from http.Server.RegisterOnShutdown:
//     that ends both.
//   - Middleware that counts requests sees a hijacked stream's handler
//     return at once; package limit's Conns keeps the stream's slot until
//     the stream ends (limit.Keep), others must do likewise.
//   - The handler sets a write deadline before each write, which
//     supersedes http.Server.WriteTimeout (http.Server.ReadTimeout bounds
//     only the reading of the request). That needs a ResponseWriter that
//     http.ResponseController can reach (wrappers must implement Unwrap);
//     without write deadlines stalled clients are not cut off, and a
//     warning is logged once. A writer that cannot flush is refused with
//     500.
//   - WriteTimeout bounds each batch as a whole: a client must take one
//     batch, at most the topic's buffer of commits (fanout BufferBytes) or
//     one catch-up, within it. One that cannot is cut off and resumes from
//     its last id, with a catch-up if it fell too far behind.
//   - A query with epoch but no after is refused (400): a cursor needs a
//     version. An empty epoch means the current epoch.
//   - A browser's EventSource gives up for good on any answer but 200:
//     refusals (400, and 503 with Retry-After when over MaxConnections or
//     shutting down) need a client that reconnects by itself, as the
//     viewsync client does. Once streaming, an ended stream is retried by
//     EventSource after the retry hint, from its last id.
//   - Browsers allow only six HTTP/1.1 connections per origin; serve SSE
//     over HTTP/2, or use the WebSocket transport, for many tabs.
//   - Reverse proxies must not buffer the response; the handler sends
//     X-Accel-Buffering: no for nginx, others need their own setting.
//   - The ping interval bounds only the wait for new commits: a slow store
//     read (a reset's snapshot, a catch-up) is never cut short by it, and
//     delays the next ping instead.
package sse
