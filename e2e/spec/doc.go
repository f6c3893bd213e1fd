// Package spec holds the tests that keep viewsync's API documents and
// its server in step: docs/openapi.yaml is loaded and validated, and a
// real server (hub, bbolt store, every transport) is driven through every
// operation it documents, with good and bad inputs, each request and
// answer checked against it; the server's routes and the document's
// paths are compared both ways; and the messages of the event stream,
// the NDJSON stream and the WebSocket are checked against the schemas of
// docs/asyncapi.yaml.
//
// The package has no code of its own; its tests are the point.
package spec
