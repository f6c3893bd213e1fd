// Package docs holds the documents of viewsync's API contract, embedded
// in the binary: the OpenAPI document of the HTTP API and the AsyncAPI
// document of the messages its push transports carry (Server-Sent
// Events, NDJSON lines, WebSocket messages). Package server serves them
// at /openapi.yaml and /asyncapi.yaml; the tests of e2e/spec hold a real
// server to them.
package docs

import _ "embed"

// OpenAPI is openapi.yaml: the OpenAPI 3.1 document of every HTTP
// operation the server routes, with its parameters, headers, statuses and
// bodies.
//
//go:embed openapi.yaml
var OpenAPI []byte

// AsyncAPI is asyncapi.yaml: the AsyncAPI 3.0 document of the SSE events,
// the NDJSON stream's lines and the WebSocket messages in both
// directions.
//
//go:embed asyncapi.yaml
var AsyncAPI []byte
