// Package cluster holds viewsync's multi-node end-to-end tests: three
// in-process NATS servers forming a JetStream cluster, and three viewsync
// nodes on it (each a natskv store with Replicas 3, a hub, and the HTTP,
// Server-Sent Events and WebSocket transports on a real listener), driven
// over the network by writers and subscribers spread over the nodes.
//
// They check guarantees 1–3 of docs/architecture.md across nodes: a commit
// made through any node reaches the subscribers of every node in version
// order, gap-free, exactly once, with the same ops; no acknowledged commit
// is lost when a NATS server (the stream leader) goes down and comes back;
// a client whose viewsync node dies resumes on another from its cursor.
//
// The package has no code of its own. VIEWSYNC_CLUSTER_LOG=1 shows the
// nodes' and the stores' logs.
package cluster
