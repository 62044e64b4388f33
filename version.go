package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at build time next to version, by the Makefile and the Dockerfile:
//
//	-ldflags "-X main.version=v1.2.3 -X main.commit=0123abc -X main.buildDate=2026-01-02T03:04:05Z"
//
// A plain `go build` in a git checkout leaves them empty; versionString then
// reads the commit and its time from the VCS stamp Go puts in the binary.
var (
	commit    = ""
	buildDate = ""
)

// versionString is what --version prints after the program name: the
// version first, as the reference attacher prints it, then where it came
// from.
func versionString() string {
	rev, date := buildStamp()
	return fmt.Sprintf("%s (commit %s, built %s, %s %s/%s)", version, rev, date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// buildStamp returns the commit and build date: those set with -ldflags,
// else the VCS stamp Go put in the binary (the commit marked -dirty for a
// modified tree), else "unknown". --version and csi_attacher_build_info
// show the same.
func buildStamp() (rev, date string) {
	rev, date, dirty := commit, buildDate, false
	if info, ok := debug.ReadBuildInfo(); ok && (rev == "" || date == "") {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
					if len(rev) > 12 {
						rev = rev[:12]
					}
				}
			case "vcs.time":
				if date == "" {
					date = s.Value
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && commit == "" && rev != "" {
			rev += "-dirty"
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	if date == "" {
		date = "unknown"
	}
	return rev, date
}
