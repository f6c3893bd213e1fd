//go:build !linux

package browser

import "os/exec"

// dieWithParent does nothing here: only Linux can tie a child's life to
// its parent's. t.Cleanup still stops every server a test starts.
func dieWithParent(*exec.Cmd) {}
