// Package idem is viewsync's rule for idempotency keys, below every
// transport: a keyed write or call is run at most once per key, and a
// retry of it gets the first answer back.
//
// A key is scoped: its ID hashes the principal, the operation's target
// and the key the client sent (ID), so that one principal never sees
// another's answers and one key names one operation. Its fingerprint
// hashes the request (Fingerprint): a retry that brings another request
// under the same key is refused (ErrKeyReused).
//
// A Table remembers answers in memory, bounded by count, bytes and age,
// and holds concurrent duplicates until the first is answered (Table.Do).
// The durable half, the key recorded with its commit, is the store's
// (store.Keys); the hub joins the two (viewsync.Hub.Once).
//
// Caveats: a key lives for Options.TTL; a retry after that runs again.
// Past Options.MaxKeys or Options.MaxBytes the oldest answers are
// forgotten sooner. Answers of status 5xx, 401, 403, 408 and 429 are not
// remembered (Remembered): a retry runs again.
package idem
