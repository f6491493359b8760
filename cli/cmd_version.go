package cli

import (
	"context"
	"runtime"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
)

var versionCommand = &command{
	name:    "version",
	summary: "print the version of coffer",
	run: func(_ context.Context, a *app, _ any, _ []string) error {
		a.out.textf("coffer %s (repository format %d, %s)\n", snapshot.Version, repo.FormatVersion, runtime.Version())
		a.out.result(map[string]any{"type": "version", "version": snapshot.Version, "format": repo.FormatVersion, "go": runtime.Version()})
		return nil
	},
}
