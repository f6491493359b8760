package cli

import (
	"context"
	"runtime"
	"runtime/debug"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
)

var versionCommand = &command{
	name:    "version",
	noStore: true,
	summary: "print the version of coffer (also coffer -version)",
	run: func(_ context.Context, a *app, _ any, _ []string) error {
		v := buildVersion()
		a.out.textf("coffer %s (repository format %d, %s)\n", v.version, repo.FormatVersion, runtime.Version())
		a.out.result(versionEvent{"version", v.version, v.revision, v.modified, repo.FormatVersion, runtime.Version()})
		return nil
	},
}

// versionInfo is what a binary knows of its own build.
type versionInfo struct {
	version  string // a release's version, or "devel" with the revision
	revision string // the VCS revision it was built from, if known
	modified bool   // built from a tree with uncommitted changes
}

// buildVersion reads the version from the build: one set at link time
// (snapshot.Version, -ldflags -X), else the module version `go install
// module@version` records, else the VCS revision `go build` in a checkout
// records.
func buildVersion() versionInfo {
	v := versionInfo{version: snapshot.Version}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.revision = s.Value
		case "vcs.modified":
			v.modified = s.Value == "true"
		}
	}
	if v.version != "dev" {
		return v
	}
	if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
		v.version = mv
		return v
	}
	v.version = "devel"
	if v.revision != "" {
		v.version += " " + v.revision[:min(12, len(v.revision))]
		if v.modified {
			v.version += "-dirty"
		}
	}
	return v
}
