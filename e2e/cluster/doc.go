// Package cluster holds viewsync's multi-node end-to-end tests: three
// in-process NATS servers forming a JetStream cluster, and three viewsync
// nodes on it (each a natskv store with Replicas 3, a hub, and the HTTP,
// Server-Sent Events and WebSocket transports on a real listener), driven
// over the network by writers and subscribers spread over the nodes.
//
// The tests check the design's guarantees 1 and 2 across nodes: a commit
// made through any node reaches the subscribers of every node, in version
// order, gap-free and exactly once, with the same ops everywhere; no
// acknowledged commit is lost when a NATS server (the collection's stream
// leader) goes down and comes back; and a client whose viewsync node dies
// resumes on another node from its cursor without a gap or a duplicate.
//
// The package has no code of its own; its tests are the point. Set
// VIEWSYNC_CLUSTER_LOG=1 to see the nodes' and the stores' logs.
package cluster
