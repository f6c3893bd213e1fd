package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// Key is an idempotency key as a Keys store records it: in the same
// atomic, durable step as the commit that the keyed request made.
type Key struct {
	// ID names the key within its collection: 1–MaxKeyID bytes of
	// [0-9a-f] (viewsync records the hex SHA-256 of the principal, the
	// operation's target and the key the client sent).
	ID string
	// Fingerprint identifies the request that first used the key, at
	// most MaxKeyFingerprint bytes: a retry that brings another is not
	// the same request.
	Fingerprint string
	// Answer is what the request was answered, in the caller's format.
	Answer []byte
	// At is when the key was recorded: its commit's time. The key
	// expires at At + Config.KeyTTL.
	At time.Time
}

// NewKey is a key for ApplyKeyed to record.
type NewKey struct {
	// ID and Fingerprint are Key's.
	ID, Fingerprint string
	// Answer makes the answer recorded with the key from the commit once
	// it is made (its version known). It is called inside the store's
	// write, perhaps on another goroutine: it must be quick, must not
	// call the store, and must not keep a.
	Answer func(a Applied) []byte
}

// The bounds of a key's ID and Fingerprint, in bytes.
const (
	MaxKeyID          = 64
	MaxKeyFingerprint = 64
)

// Check reports whether k can be recorded.
func (k NewKey) Check() error {
	if len(k.ID) == 0 || len(k.ID) > MaxKeyID {
		return fmt.Errorf("%w: key id of %d bytes, want 1-%d", protocol.ErrBadID, len(k.ID), MaxKeyID)
	}
	for i := 0; i < len(k.ID); i++ {
		if c := k.ID[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%w: key id %q is not lowercase hex", protocol.ErrBadID, k.ID)
		}
	}
	if len(k.Fingerprint) > MaxKeyFingerprint {
		return fmt.Errorf("%w: key fingerprint of %d bytes, limit %d", protocol.ErrBadID, len(k.Fingerprint), MaxKeyFingerprint)
	}
	if k.Answer == nil {
		return fmt.Errorf("%w: key without an answer", protocol.ErrBadID)
	}
	return nil
}

// ErrKeyExists: the idempotency key is recorded already (see Keys).
var ErrKeyExists = errors.New("idempotency key recorded already")

// KeyExistsError carries the key ApplyKeyed found recorded. It matches
// ErrKeyExists.
type KeyExistsError struct{ Key Key }

// Error implements error.
func (e *KeyExistsError) Error() string {
	return fmt.Sprintf("idempotency key %s recorded already (at %s)", e.Key.ID, e.Key.At.Format(time.RFC3339Nano))
}

// Is makes errors.Is(err, ErrKeyExists) true.
func (e *KeyExistsError) Is(target error) bool { return target == ErrKeyExists }

// Keys is implemented by stores that record idempotency keys with the
// commits they made (boltstore, memstore and natskv do), so that a retry
// of a keyed write finds its key, and is not applied again, even after a
// crash that came after the commit was durable and before it was
// answered, and on every process sharing the store.
//
// A key is recorded in its collection. It expires Config.KeyTTL after its
// commit and is forgotten then or later (expired keys are swept a few at
// a time as commits go on; an expired key is never returned); past
// Config.MaxKeys keys the oldest are forgotten sooner. Drop forgets the
// collection's keys.
type Keys interface {
	// ApplyKeyed is Apply that also records k, atomically with the
	// commit: after a crash the store holds both or neither. When the
	// collection holds the live key k.ID already, it applies nothing
	// and returns a *KeyExistsError with it, before any other check.
	// A commit that fails records nothing.
	ApplyKeyed(ctx context.Context, collection string, ops []protocol.Op, ifs map[string]uint64, k NewKey) (Applied, error)
	// Key returns the live key id of collection, sharing no memory with
	// the store, or an error wrapping ErrNotFound. On a store shared by
	// several processes it sees the keys any of them recorded before it
	// was called.
	Key(ctx context.Context, collection, id string) (Key, error)
}
