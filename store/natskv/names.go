package natskv

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Headers viewsync sets on the messages of a commit batch.
const (
	// hdrVersion (record messages) is the version of the commit that
	// wrote the record or, on a tombstone, deleted it.
	hdrVersion = "Vs-V"
	// hdrDeleted marks a tombstone; its value is the deletion time in Unix
	// nanoseconds.
	hdrDeleted = "Vs-Del"
	// hdrChunks (log messages) is how many messages the commit's JSON is
	// split into.
	hdrChunks = "Vs-N"
	// hdrEnd marks the last message of a batch.
	hdrEnd = "Vs-End"
	// hdrKeyAt (key messages) is when the key was recorded, its commit's
	// time in Unix nanoseconds; hdrKeyFP is the request's fingerprint.
	// The message's data is the answer.
	hdrKeyAt = "Vs-At"
	hdrKeyFP = "Vs-Fp"
)

// JetStream headers of atomic batch publishing and optimistic concurrency.
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
	// hdrMsgID is the group's message id, the same on every attempt, for
	// the server's duplicate detection.
	hdrMsgID        = "Nats-Msg-Id"
	hdrExpectedLast = "Nats-Expected-Last-Sequence"
	// hdrExpectedLastSubjSeq "0": the message's subject must hold no
	// message yet.
	hdrExpectedLastSubjSeq = "Nats-Expected-Last-Subject-Sequence"
	// hdrExpectedLastSubjSeqSubj makes hdrExpectedLastSubjSeq check the
	// last message of a subject filter (a collection's, in the shared
	// layout) instead of the message's subject.
	hdrExpectedLastSubjSeqSubj = "Nats-Expected-Last-Subject-Sequence-Subject"
)

// Stream metadata keys.
const (
	metaEpoch      = "viewsync.epoch"
	metaCollection = "viewsync.collection"
	metaFormat     = "viewsync.format"
	metaLayout     = "viewsync.layout"
	formatVersion  = "1"
)

// validPrefix reports whether p can start stream names and subjects: 1-32
// characters of [A-Za-z0-9_-].
func validPrefix(p string) error {
	if p == "" || len(p) > 32 {
		return fmt.Errorf("natskv: prefix %q must be 1-32 characters", p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("natskv: prefix %q must match ^[A-Za-z0-9_-]{1,32}$", p)
		}
	}
	return nil
}

// escape maps a valid collection name to a stream-name-safe subject token:
// '.' (not allowed in stream names, a token separator in subjects) becomes
// '~', which collection names never contain, so the mapping is reversible.
func escape(collection string) string { return strings.ReplaceAll(collection, ".", "~") }

// unescape is the inverse of escape.
func unescape(token string) string { return strings.ReplaceAll(token, "~", ".") }

// names are the stream name and subjects of one collection.
type names struct {
	stream string
	// base is PREFIX.ESCAPED, to which an epoch is appended.
	base string
}

// newNames returns the names of collection under prefix: its stream is
// PREFIX_ESCAPED, or PREFIX in the shared layout.
func newNames(prefix, collection string, shared bool) names {
	e := escape(collection)
	n := names{stream: prefix + "_" + e, base: prefix + "." + e}
	if shared {
		n.stream = prefix
	}
	return n
}

// filter returns the subject filter of every message of the collection,
// of every epoch: PREFIX.ESCAPED.>.
func (n names) filter() string { return n.base + ".>" }

// sharedSubjects returns the subject filter of the shared layout's
// stream: every collection subject (PREFIX.COLL.EPOCH.…, four tokens or
// more), and none of the core NATS subjects of three tokens
// (PREFIX.COLL.w, .n, .p, PREFIX._node.p).
func sharedSubjects(prefix string) string { return prefix + ".*.*.>" }

// epochOf returns the epoch token of a subject of the collection, and
// whether the subject has a valid one.
func (n names) epochOf(subj string) (string, bool) {
	rest, ok := strings.CutPrefix(subj, n.base+".")
	if !ok {
		return "", false
	}
	e, _, ok := strings.Cut(rest, ".")
	return e, ok && validEpoch(e)
}

// subjects returns the stream's subject filter for epoch.
func (n names) subjects(epoch string) string { return n.base + "." + epoch + ".>" }

// prefix returns the subject prefix of epoch, ending in '.'.
func (n names) prefix(epoch string) string { return n.base + "." + epoch + "." }

// recordSubject returns the subject of record id.
func recordSubject(prefix, id string) string {
	return prefix + "r." + base64.RawURLEncoding.EncodeToString([]byte(id))
}

// recordID returns the id a record subject's last token (as
// recordSubject writes it) stands for.
func recordID(token string) (string, error) {
	id, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", fmt.Errorf("record subject token %q: %w", token, err)
	}
	return string(id), nil
}

// recordMessage parses m, a record's message under prefix: the record's
// id, the version that wrote it, and whether it is a tombstone.
func recordMessage(prefix string, m feedMsg) (id string, version uint64, deleted bool, err error) {
	rest, ok := strings.CutPrefix(m.subj, prefix+"r.")
	if !ok {
		return "", 0, false, fmt.Errorf("message %d on %q is not a record of %s", m.seq, m.subj, prefix)
	}
	if id, version, err = parseRecord(rest, m.hdr.Get(hdrVersion)); err != nil {
		return "", 0, false, err
	}
	return id, version, m.hdr.Get(hdrDeleted) != "", nil
}

// parseRecord parses what a record's message names: the token of its
// subject after "r.", the record's id, and its version header, the
// version that wrote it.
func parseRecord(token, versionHeader string) (id string, version uint64, err error) {
	if id, err = recordID(token); err != nil {
		return "", 0, err
	}
	if version, err = strconv.ParseUint(versionHeader, 10, 64); err != nil {
		return "", 0, fmt.Errorf("record %q: version header: %w", id, err)
	}
	return id, version, nil
}

// logSubject returns the subject of chunk k of commit v's log entry.
func logSubject(prefix string, v uint64, k int) string {
	return fmt.Sprintf("%sc.%d.%d", prefix, v, k)
}

// keySubject returns the subject of idempotency key id (lowercase hex, a
// valid subject token).
func keySubject(prefix, id string) string { return prefix + "k." + id }

// keyFilter returns the subject filter of every idempotency key.
func keyFilter(prefix string) string { return prefix + "k.>" }

// horizonSubject returns the subject of the tombstone horizon.
func horizonSubject(prefix string) string { return prefix + "g" }

// startSubject returns the subject of the message that starts a history
// replaced by Drop.
func startSubject(prefix string) string { return prefix + "e" }

// logFilter returns the subject filter of the whole log.
func logFilter(prefix string) string { return prefix + "c.>" }

// newEpoch returns a fresh random epoch of 16 hex digits, different from
// old. It is a valid protocol epoch and a valid subject token.
func newEpoch(old string) string {
	for {
		var b [8]byte
		rand.Read(b[:]) // never fails; it crashes the program instead
		if e := hex.EncodeToString(b[:]); e != old {
			return e
		}
	}
}

// firstEpoch returns the epoch of a collection never written: every
// process derives the same one from the prefix and the name, so that it is
// stable without anything stored, and the collection's first commit
// creates its stream in that epoch. It looks like those newEpoch makes.
func firstEpoch(prefix, collection string) string {
	sum := sha256.Sum256([]byte("viewsync first epoch\x00" + prefix + "\x00" + collection))
	return hex.EncodeToString(sum[:8])
}

// createdSubject is the core NATS subject on which a process announces
// that it created the collection's stream.
func (n names) createdSubject() string { return n.base + ".n" }

// createdFilter is the subscription to every collection's createdSubject
// of the prefix.
func createdFilter(prefix string) string { return prefix + ".*.n" }

// validEpoch reports whether e is an epoch this package makes.
func validEpoch(e string) bool {
	if len(e) != 16 {
		return false
	}
	_, err := hex.DecodeString(e)
	return err == nil && strings.ToLower(e) == e
}
