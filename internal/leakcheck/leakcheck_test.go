package leakcheck

import (
	"strings"
	"testing"
	"time"
)

// TestFind: a goroutine that returns within the patience is not reported,
// however much longer than goleak's own retries it takes; one still
// running after it is, by the function it runs.
func TestFind(t *testing.T) {
	done := make(chan struct{})
	go func() {
		time.Sleep(time.Second)
		close(done)
	}()
	if err := find(time.Minute); err != nil {
		t.Fatalf("a goroutine returning after a second was reported: %v", err)
	}
	<-done

	stuck := make(chan struct{})
	go blockedUntil(stuck)
	err := find(200 * time.Millisecond)
	close(stuck)
	if err == nil || !strings.Contains(err.Error(), "blockedUntil") {
		t.Fatalf("a goroutine still running: %v, want it reported", err)
	}
	if err := find(time.Minute); err != nil {
		t.Fatalf("once it returned: %v", err)
	}
}

// blockedUntil returns when c is closed.
func blockedUntil(c chan struct{}) { <-c }

// TestCheck: a failed run keeps its exit code; a passing one with no
// goroutine left passes.
func TestCheck(t *testing.T) {
	if got := Check(3); got != 3 {
		t.Errorf("Check(3) = %d, want the run's own 3", got)
	}
	if got := Check(0); got != 0 {
		t.Errorf("Check(0) with no goroutine left = %d, want 0", got)
	}
}
