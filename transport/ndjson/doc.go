// Package ndjson serves viewsync's stream of newline-delimited JSON:
// GET /v1/collections/{c}/stream?after=V&epoch=E, one collection per
// request, each line one WebSocket server message (reset, catchup, commit,
// ping, and an error last when the server ends the stream). Cursors and
// limits are SSE's; a client reads it with fetch, so its token travels in
// the Authorization header.
//
//	stream, err := ndjson.New(hub, &ndjson.Options{Policy: policy})
//	api, err := httpapi.New(hub, &httpapi.Options{Stream: stream, Policy: policy})
//
// It is a handshake and an encoder over package transport/internal/push:
// the worked example of a push transport in docs/architecture.md.
package ndjson
