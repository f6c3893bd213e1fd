// Package httpapi serves the request/response half of viewsync's HTTP API
// v1 (see the README): snapshots, the version poll, changes with long-poll,
// catch-up and reset, record reads and writes with preconditions, atomic
// commits, calls, and the health endpoints. It mounts the push transports
// given in Options (Events, Stream, WebSocket).
//
//	api, err := httpapi.New(hub, &httpapi.Options{Policy: policy})
//	mux.Handle("/v1/", api)
//
// Page caching and call timeouts: docs/architecture.md.
package httpapi
