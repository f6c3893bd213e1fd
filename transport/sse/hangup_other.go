//go:build !linux

package sse

// hangupWatcher is a no-op here: a live stream whose client went away is
// noticed at its next write (a commit or a ping).
type hangupWatcher struct{}

func (*hangupWatcher) watch(*liveConn) bool { return false }
func (*hangupWatcher) unwatch(*liveConn)    {}
