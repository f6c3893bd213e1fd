package natskv

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/viewsync/viewsync/store"
)

// ErrOutcomeUnknown is returned by Apply when the store cannot tell whether
// its commit was made, and will not try again lest it be made twice: an
// acknowledgement was lost, the batch's messages are no longer in the
// stream (trimmed, or the collection dropped), and the server's duplicate
// window no longer covers it (the cluster was unreachable for about half
// that window, two minutes by default). It matches store.ErrUnavailable.
var ErrOutcomeUnknown = fmt.Errorf("%w: the outcome of the commit is unknown", store.ErrUnavailable)

// errNotSent marks a batch that never reached the server (the connection
// was down): it was not stored.
var errNotSent = errors.New("not sent")

// errRejected marks a batch the stream refused for good.
var errRejected = errors.New("batch rejected")

// errDuplicate is the stream's refusal of an attempt because an earlier
// attempt of the same group (same message id) was stored.
var errDuplicate = errors.New("an earlier attempt of the commit was stored")

// errInProcess is the stream's refusal of an attempt because an earlier
// attempt of the same group is being stored.
var errInProcess = errors.New("an earlier attempt of the commit is being stored")

// isClosedErr reports whether err says the connection is closed: the
// store is closing.
func isClosedErr(err error) bool {
	return errors.Is(err, jetstream.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionClosed)
}

// isGoneErr reports whether err says a consumer or stream is not there.
func isGoneErr(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound)
}
