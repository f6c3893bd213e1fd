// Package boltstore is viewsync's embedded, durable default store.Store:
// every collection, its change log and its deletion tombstones live in one
// bbolt file.
//
// # Writes: group commit
//
// Apply and Drop hand their request to a single committer goroutine and
// wait. The committer takes everything queued (up to Options.MaxBatch),
// runs it in arrival order in one bbolt write transaction, takes in what
// arrived meanwhile, commits that transaction with one fsync and answers
// every request. Requests arriving while a transaction syncs form the next
// batch, so a lone writer pays one fsync per commit and no timer, while N
// concurrent writers share one. Each
// commit is checked (preconditions, deletes of existing records) before it
// writes anything, so a commit that fails its checks does not disturb the
// others of its batch; a failure of bbolt itself fails the whole batch and
// changes nothing. A commit is acknowledged only after its transaction is
// durable.
//
// # Reads
//
// Head, Get, Snapshot, Changes and CatchUp each run in one bbolt read
// transaction, so each answer is consistent at one version. Reads never
// create anything: a collection never written has no bucket and reads as an
// empty history at version 0 in the store-wide epoch.
//
// # On-disk layout
//
// Numbers are 8-byte big-endian, so that keys sort by number. Top-level
// buckets:
//
//	_viewsync                      store-wide settings (no collection name starts with "_")
//	  format  → "1"                layout version; Open refuses any other
//	  epoch   → 16 hex digits      the store-wide epoch, fixed when the file is created
//	COLLECTION                     one bucket per collection ever written or dropped
//	  meta
//	    epoch     → the collection's epoch (the store-wide one until it is dropped)
//	    version   → version of the latest commit, then its time (Unix ns)
//	    logfloor  → version of the newest commit no longer in the log
//	    tombfloor → highest version of any trimmed tombstone
//	  records     id → record version, then the value's compact JSON
//	  byversion   record version, then id → empty (every record exactly once)
//	  log         version → the commit as the JSON of protocol.Commit
//	  tombstones  id → deletion version, then deletion time (Unix ns)
//	  tombindex   deletion version, then id → deletion time (Unix ns)
//
// The log holds exactly the commits logfloor+1 through version: Changes
// after a version below logfloor returns store.ErrCompacted. Every deletion
// with a version above tombfloor still has its tombstone: CatchUp after a
// version below tombfloor returns store.ErrHistoryGone. CatchUp walks
// byversion and tombindex from the cursor on, so its cost follows what
// changed. Writing a record removes its tombstone; deleting it removes its
// record and byversion entry and writes a tombstone.
//
// The log entry is what encoding/json makes of protocol.Commit, except that
// values are copied verbatim where encoding/json would HTML-escape them, so
// Changes returns every value byte for byte as it was written. Apply
// encodes the ops in the caller's goroutine; the committer only wraps them
// with the version and the time.
//
// Retention is incremental, done at the end of each batch for each
// collection it wrote, with work bounded by the number of its commits: a
// few of the oldest log entries while the log holds more than
// store.Config.RetainCommits (so it keeps exactly that many once caught
// up), and a few tombstones older than store.Config.RetainTombstones
// before the latest commit's time (store.Config.Now). CatchUp answers as if
// trimming were complete: a tombstone past the horizon at the latest commit
// counts as forgotten even while it is still in the file. Drop deletes the
// collection's bucket and writes a new one with a fresh random epoch at
// version 0.
//
// # Caveats
//
//   - One process at a time: bbolt locks the file, and Open waits at most
//     Options.LockTimeout (a second by default) for it, then fails with
//     ErrLocked.
//   - A damaged file fails with ErrDamaged, never with a panic of bbolt:
//     Open refuses a file cut short, or whose meta pages, root bucket or
//     collections' bucket roots are damaged; it reads a few pages per
//     collection, not the whole file, so damage deeper in is found by the
//     reads and commits that reach it, which fail with ErrDamaged (bbolt's
//     panics and faults on the mapped file are recovered) while the rest
//     of the file serves on. bbolt keeps no checksums of its data pages:
//     garbage that still parses as a page is not found at all.
//   - A write that fails for want of space, a quota, the file size limit,
//     or a read-only or failing file system matches store.ErrUnavailable,
//     and Writable reports it until a write succeeds again, or a probe
//     does: a megabyte written beside the file (PATH.probe), at most once
//     a second, while Writable is asked.
//   - Durability is bbolt's: fsync of the data pages, then of the meta page.
//     Options.NoSync gives that up and is for tests and benchmarks only.
//   - Throughput of a single writer is bounded by the disk's fsync latency;
//     concurrent writers share fsyncs, up to Options.MaxBatch commits each.
//   - A long read transaction (a Snapshot of a large collection) keeps the
//     pages it sees alive, so the file grows while it runs, and bbolt must
//     wait for it before it can remap a growing file, which stalls writes.
//   - Retention runs only when a collection is written: the log and the
//     tombstones of an idle collection are kept until its next commit (the
//     contract asks for "at least").
//   - Tombstones are trimmed oldest version first and the trim stops at the
//     first one still within the horizon, so a clock that went backwards
//     can keep a few expired tombstones longer.
//   - The file never shrinks: bbolt reuses freed pages but does not return
//     them to the file system. Compact offline (bbolt compact) if needed.
//   - Records in one Snapshot or CatchUp share one buffer for their values:
//     holding on to one value keeps the whole buffer alive.
package boltstore
