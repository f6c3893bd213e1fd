// Package e2e holds viewsync's end-to-end tests: a real server (hub, durable
// bbolt store, HTTP API, Server-Sent Events and WebSocket transports on a
// real listener) driven over the network by many concurrent clients, with
// the history of what each client saw checked against the guarantees of
// the design (order, no gaps, no duplicates, catch-up, reset, snapshot).
//
// The package has no code of its own; its tests are the point.
package e2e
