package main

import (
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

// versionString describes this build.
func versionString() string {
	v := version
	if v == "" {
		bi, _ := debug.ReadBuildInfo()
		v = buildVersion(bi)
	}
	return "viewsync " + v + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
}

// buildVersion names the build that bi describes: the main module's
// version when the go command knew it (go install …@v1.2.3), else the
// commit it was built from — the revision's first 12 digits, "+dirty" when
// the checkout had changes, and the commit's time — else "devel".
func buildVersion(bi *debug.BuildInfo) string {
	if bi == nil {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, at string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	if at != "" {
		rev += " " + at
	}
	return rev
}
