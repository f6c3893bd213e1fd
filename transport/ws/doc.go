// Package ws serves viewsync over WebSocket: GET /v1/ws with the
// subprotocol viewsync.v1, JSON text messages (package protocol), many
// subscriptions, commits and calls on one connection.
//
//	sockets, err := ws.New(hub, &ws.Options{Policy: policy})
//	api, err := httpapi.New(hub, &httpapi.Options{WebSocket: sockets, Policy: policy})
//
// Connections are hijacked, out of http.Server.Shutdown's reach: on
// shutdown call hub.Close and Handler.Shutdown. Reading, close codes,
// pings and caveats: docs/architecture.md.
package ws
