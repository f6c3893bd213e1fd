// Package ndjson serves viewsync's stream of newline-delimited JSON:
//
//	GET /v1/collections/{c}/stream?after=V&epoch=E
//
// A Handler follows one collection per request, as package sse does, with
// the same cursors (the Last-Event-ID header, EPOCH:VERSION, overrides the
// after and epoch parameters; without any the stream starts with a reset)
// and the same limits. It answers with Content-Type application/x-ndjson;
// each line is one JSON object, exactly a WebSocket server message:
//
//	{"type":"reset","collection":…,"epoch":…,"version":…,"reset":true,"records":[…]}
//	{"type":"catchup","collection":…,"epoch":…,"version":…,"compacted":true,"records":[…],"deleted":[…]}
//	{"type":"commit","collection":…,"epoch":…,"version":…,"at":…,"ops":[…]}
//	{"type":"ping"}
//	{"type":"error","code":"unauthorized"|"unavailable","message":…}
//
// A client reads it with fetch, which, unlike EventSource, can send an
// Authorization header: the token stays out of URLs and logs. Its cursor
// is the epoch and version of the last reset, catch-up or commit. Pings
// keep an idle stream alive. An error line comes last, when the server
// ends the stream on its own: the token expired (unauthorized: reconnect
// with a fresh token), history is busy or the server shuts down
// (unavailable: resume from the cursor later).
//
// The handler is a handshake and an encoder over the push machinery every
// push transport shares (package transport/internal/push): see package sse
// for how streams are served and their caveats, which hold here too.
// Refusals before the stream starts carry the contract's JSON error body:
// 400 for a malformed cursor, 401 and 403, 503 with Retry-After past
// Options.MaxConnections or while shutting down.
package ndjson
