package main

import (
	"runtime/debug"
	"testing"
)

func TestBuildVersion(t *testing.T) {
	const rev = "3a36a0b9c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6"
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"no build info", nil, "devel"},
		{"nothing known", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "devel"},
		{"empty version", &debug.BuildInfo{}, "devel"},
		{"module version", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3"},
		{"module version wins over vcs", &debug.BuildInfo{
			Main:     debug.Module{Version: "v1.2.3"},
			Settings: vcs("vcs.revision", rev, "vcs.modified", "true"),
		}, "v1.2.3"},
		{"pseudo-version", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20260101120000-3a36a0b9c1d2"}}, "v0.0.0-20260101120000-3a36a0b9c1d2"},
		{"clean checkout", &debug.BuildInfo{
			Main:     debug.Module{Version: "(devel)"},
			Settings: vcs("vcs", "git", "vcs.revision", rev, "vcs.time", "2026-03-01T10:20:30Z", "vcs.modified", "false"),
		}, "3a36a0b9c1d2 2026-03-01T10:20:30Z"},
		{"dirty checkout", &debug.BuildInfo{
			Main:     debug.Module{Version: "(devel)"},
			Settings: vcs("vcs.revision", rev, "vcs.time", "2026-03-01T10:20:30Z", "vcs.modified", "true"),
		}, "3a36a0b9c1d2+dirty 2026-03-01T10:20:30Z"},
		{"no time", &debug.BuildInfo{
			Main:     debug.Module{Version: "(devel)"},
			Settings: vcs("vcs.revision", rev, "vcs.modified", "true"),
		}, "3a36a0b9c1d2+dirty"},
		{"short revision", &debug.BuildInfo{
			Main:     debug.Module{Version: "(devel)"},
			Settings: vcs("vcs.revision", "abc123"),
		}, "abc123"},
		{"time without revision", &debug.BuildInfo{
			Main:     debug.Module{Version: "(devel)"},
			Settings: vcs("vcs.time", "2026-03-01T10:20:30Z", "vcs.modified", "true"),
		}, "devel"},
	} {
		if got := buildVersion(tc.bi); got != tc.want {
			t.Errorf("%s: buildVersion = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestVersionOverride(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })
	version = "v9.8.7"
	if got := versionString(); len(got) < len("viewsync v9.8.7 ") || got[:len("viewsync v9.8.7 ")] != "viewsync v9.8.7 " {
		t.Errorf("with main.version set: %q, want viewsync v9.8.7 …", got)
	}
}
