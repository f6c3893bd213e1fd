// Package e2e holds viewsync's end-to-end tests: a real server (hub,
// durable bbolt store, HTTP API, Server-Sent Events, the NDJSON stream and
// WebSocket on a real listener) driven over the network by many concurrent
// clients — the soak test, the push suite over every push transport,
// access control — with what each client saw checked against the
// guarantees of docs/architecture.md (order, no gaps, no duplicates,
// catch-up, reset, snapshot).
//
// The package has no code of its own; its tests are the point.
package e2e
