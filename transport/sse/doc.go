// Package sse serves viewsync's Server-Sent Events:
// GET /v1/collections/{c}/events?after=V&epoch=E, one collection per
// request, with events reset, catchup and commit whose id is the cursor
// EPOCH:VERSION (Last-Event-ID resumes).
//
//	events, err := sse.New(hub, &sse.Options{Policy: policy})
//	mux.Handle("GET /v1/collections/{c}/events", events) // or httpapi.Options.Events
//
// It is a handshake and an encoder over package transport/internal/push.
// Close the hub on shutdown: http.Server.Shutdown does not end streams.
// Caveats (proxies, HTTP/2, write deadlines): docs/architecture.md.
package sse
