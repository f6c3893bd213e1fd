// Package viewsync keeps many clients' views of shared data in sync, live.
//
// A Hub sits on a store.Store and serves named collections of records. Every
// commit to a collection bumps its version, the sync reference clients
// compare against, and is kept in a change log, so a client at any cursor
// (EPOCH:VERSION) can ask for exactly what changed since:
//
//	write (HTTP, WebSocket, call, Go API)
//	  → Hub: validate and normalize ops
//	  → store: apply ops + append commit + bump version, one atomic durable step
//	  → Hub: advance the in-memory head, wake waiters
//	  → transports: poll, long-poll, push
//
// A client whose cursor is older than the log gets a compacted catch-up (only
// the records that changed and the ids deleted since); one from another epoch,
// or older than the deletion tombstones, gets a reset (a full snapshot).
//
// The HTTP API lives in package transport/httpapi; the binary in cmd/viewsync.
//
// Caveats: a Hub serves one process. The head it keeps in memory (answering
// version polls and waking long-polls) learns of commits made through this
// Hub only; several processes sharing one store need a store that reports
// commits made elsewhere.
package viewsync
