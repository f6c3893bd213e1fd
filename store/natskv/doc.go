// Package natskv is viewsync's cluster store: a store.Store and
// store.Watcher on NATS JetStream, shared by every process connected to the
// same server or cluster with the same Options.Prefix.
//
// # Mapping
//
// One JetStream stream per collection, shaped like a KV bucket
// (MaxMsgsPerSubject 1, file storage, Options.Replicas replicas,
// AllowAtomicPublish). With P the prefix (default "VS"), C the collection
// name with '.' replaced by '~' (collection names never contain '~', so
// the mapping is reversible) and E the collection's epoch:
//
//	stream   P_C                 metadata viewsync.epoch=E, viewsync.collection, viewsync.format=1
//	subjects P.C.E.>
//	P.C.E.r.KEY    a record: KEY is the id in unpadded base64url; the latest
//	               value, or a tombstone (header Vs-Del: deletion time in
//	               Unix ns); header Vs-V: the version that wrote or deleted it
//	P.C.E.c.V.K    the log entry of commit V: its JSON (protocol.AppendCommit)
//	               split into Vs-N messages K = 0 … Vs-N-1 of at most the
//	               server's max_payload less 4 KiB
//	P.C.E.g        the tombstone horizon: the highest version of a forgotten
//	               tombstone (decimal)
//	P.C.E.e        the start of a history replaced by Drop (empty)
//
// The epoch is 16 random hex digits, fixed when the stream is created and
// part of every subject, so a batch planned in one epoch can never land in
// another.
//
// # Versions
//
// A commit moves the collection from version V to V+1 and writes one
// atomic batch (below) whose log entry is P.C.E.c.(V+1).*. Versions are
// not stream sequences — a batch holds several messages — but they follow
// them: the commit with version V is the V-th log entry in stream order,
// and a batch is accepted only if the stream's last sequence is the one
// the writer read its state at (header Nats-Expected-Last-Sequence on the
// batch's first message). So at most one batch can follow any given
// state: versions are unique, gap-free and in stream order, and every
// reader following the stream sees them in that order. The first message
// of each log entry also carries Nats-Expected-Last-Subject-Sequence 0
// (the server honours it inside atomic batches): a batch claiming a
// version whose log entry exists is refused, so that even a batch the
// last-sequence check let through by mistake could not replace an
// acknowledged commit's entry (the stream keeps one message per subject).
//
// # Commits
//
// Each process has one committer goroutine per collection. It takes the
// queued Applies (as many as fit in one batch), checks each against the
// process's state of the collection plus the commits planned before it
// (preconditions are record versions, that is per-key revisions: Vs-V;
// deletes need an existing record), and publishes those that pass as
// consecutive commits in one JetStream atomic batch (headers
// Nats-Batch-Id, Nats-Batch-Sequence, Nats-Batch-Commit; nats-server 2.12
// or later): one message per record written (the latest write of each id
// in the batch), the horizon message when tombstones expired, then the
// log entries, the last message carrying Vs-End. The server stores the
// whole batch or nothing. A commit is acknowledged once the server's
// acknowledgement of the batch arrived (stored, fsynced with sync_always,
// replicated to a quorum with Replicas > 1) and the process's follower
// (below) has applied it, so the caller reads its own write.
//
// When another process committed first, the server refuses the batch
// (wrong last sequence); the committer waits for the follower to catch up
// (for at most Options.Timeout: the server's count includes batches not
// stored yet) and checks and plans again, so a precondition is always
// checked against the state the commit follows. When nobody takes the
// batch (no responders: a leader election, or the stream was dropped or
// lost) it was not stored; the committer tries again in a moment, or in
// the stream's new epoch. When the answer is lost (time-out), the
// committer waits for the follower to read what the stream holds and looks
// for the batch's id there before trying again: the follower notes the
// ids of the batches its committer awaits until their group is answered,
// and the committer looks for them and plans again under one lock, from a
// state that holds none of its earlier attempts. Each attempt is planned
// at the last sequence of the one before or a later one, so at most one of
// them can be stored, and a commit is never made twice; each Apply is
// answered as the attempt that was stored decided (its version, or its
// failed check). A
// failed check (precondition, delete of a missing record) fails that Apply
// alone; it is answered with the group. Once a commit is handed to the
// server the caller's context no longer cancels it: Apply returns its
// outcome.
//
// # Reads and the follower
//
// Each process keeps every collection it has open (read or written since
// Open) in memory — its records, the retained log, the tombstones and an
// index of records by version — built by a follower: an ordered consumer
// on the stream from its first message. It first replays the stream (the
// latest message of each record and tombstone, the retained log entries,
// the horizon), and installs that state once it has read the last message
// of a batch with nothing pending; from then on it applies each commit
// from its log entry, whole. Head, Get, Snapshot, Changes and CatchUp are
// answered from that state under a lock, so each reads one version. They
// see other processes' commits after a short lag (the follower's); a
// process sees its own commits at once.
//
// If the follower finds a gap (a log entry it missed, purged before it
// read it), a message of another epoch, or loses its consumer for good, it
// reloads the state from the stream; readers keep the last complete state
// meanwhile.
//
// # Watch
//
// Every commit the follower applies, whichever process made it, is queued
// as a store.Event and delivered to the Watch callbacks from one goroutine
// per store, in order; a replaced history (Drop anywhere, a reload, the
// stream lost and re-created) is an Event with a nil Commit and the new
// state's epoch and version (a reload of the same history instead reports
// the commits the watchers missed, when the retained log still holds
// them). The queue is not bounded: callbacks must
// return quickly.
//
// # Retention
//
// The process trims its in-memory log to Config.RetainCommits once it
// holds RetainCommits plus a quarter more; after each batch the committer
// purges the log subjects below the first retained entry (purge with a
// subject filter and a sequence). Each batch computes the tombstone
// horizon at its commit time (the highest version of the tombstones older
// than Config.RetainTombstones, oldest first) and writes it with the
// commit, so a catch-up from before it gets store.ErrHistoryGone from the
// moment the commit is acknowledged; the expired tombstones' messages are
// then purged (by subject, below a sequence that excludes any later write
// of the record), at most 64 per batch. Changes before the first retained
// entry returns store.ErrCompacted.
//
// # Epochs
//
// A collection's stream is created on its first use, read or write, with
// a fresh epoch; processes racing to create it adopt the winner's. Drop
// updates the stream to a fresh epoch (subjects and metadata), purges
// every message stored before the update and writes the start message:
// writers of the old epoch find no stream for their subjects and re-plan
// in the new one, and followers see the start message (and the stream
// advisories) and reload. Drop does not delete the stream: a stream
// re-created at once under the same name can come back with the deleted
// one's messages. A stream deleted by someone else is re-created with a
// fresh epoch by the next process that needs it.
//
// # Server settings
//
//   - JetStream enabled, nats-server 2.12 or later (atomic batches).
//   - Durability with one replica needs sync_always (fsync before the
//     acknowledgement); with Replicas 3 the acknowledgement means a quorum
//     stored the batch.
//   - A batch holds one message per record written plus the log entry's
//     chunks plus one. The server's jetstream max_batch_size (default 1000)
//     bounds it; Options.MaxBatch must not exceed it. A commit that needs
//     more fails with protocol.ErrTooLarge. With the hub's default of 1000
//     ops per commit, set max_batch_size to at least 1100 (the tests use
//     2048) and Options.MaxBatch to match; record values must fit in one
//     message (max_payload, default 1 MiB, less 1 KiB).
//   - Permission to subscribe to $JS.EVENT.ADVISORY.STREAM.{CREATED,
//     UPDATED,DELETED}.* lets processes notice a Drop elsewhere at once;
//     without it they notice at their next commit or message.
//
// # Caveats
//
//   - Memory: each process holds each open collection whole — records,
//     up to 1.25 × RetainCommits log entries (default 100,000), live
//     tombstones — and opens a collection, with a consumer, on first use.
//     Opening a large collection replays its stream. Every valid name read
//     creates a stream.
//   - Reads in one process lag commits made in another by the follower's
//     delay; use Watch (the hub does) to learn of them.
//   - Commits to one collection are serialised across the cluster by the
//     stream's last sequence: processes writing the same collection at
//     once retry each other's conflicts; within a process, concurrent
//     Applies share batches.
//   - Every process writing a collection should use the same Config;
//     retention follows the writer's.
package natskv
