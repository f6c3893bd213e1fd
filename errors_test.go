package viewsync_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/store"
)

// TestRedact: a failed precondition told to a caller without the read
// right is still a precondition failure, and the same whatever the record's
// version, whether it exists and which record failed; other errors pass as
// they are.
func TestRedact(t *testing.T) {
	var msgs []string
	for _, pe := range []*store.PreconditionError{
		{ID: "a", Want: 3, Have: 13},
		{ID: "a", Want: 3, Have: 0},
		{ID: "b", Want: 0, Have: 13},
	} {
		err := viewsync.Redact(fmt.Errorf("viewsync: commit to c: %w", pe))
		if !errors.Is(err, viewsync.ErrPrecondition) {
			t.Errorf("Redact(%v) = %v, not ErrPrecondition", pe, err)
		}
		if strings.Contains(err.Error(), "13") || strings.Contains(err.Error(), `"`) {
			t.Errorf("Redact(%v) = %q tells the version or the record", pe, err)
		}
		msgs = append(msgs, err.Error())
	}
	if msgs[0] != msgs[1] || msgs[1] != msgs[2] {
		t.Errorf("the redacted messages differ: %q", msgs)
	}
	for _, err := range []error{nil, viewsync.ErrNotFound, viewsync.ErrTooLarge, store.ErrUnavailable} {
		if got := viewsync.Redact(err); got != err {
			t.Errorf("Redact(%v) = %v, want it unchanged", err, got)
		}
	}
}
