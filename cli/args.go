package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
	"github.com/cofferhq/coffer/storage"
)

func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

func repoExists(location string) error {
	return fmt.Errorf("%s already holds a coffer repository: %w", location, storage.ErrExists)
}

// splitRef splits "<snapshot>[:path]".
func splitRef(ref string) (id, path string) {
	id, path, _ = strings.Cut(ref, ":")
	return id, path
}

// findSnapshot resolves a snapshot id prefix.
func (a *app) findSnapshot(ctx context.Context, prefix string) (*snapshot.Snapshot, error) {
	return snapshot.Find(ctx, a.repo, prefix)
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// compressionFlag is a repo.Compression named on the command line.
type compressionFlag repo.Compression

func (c *compressionFlag) String() string { return repo.Compression(*c).String() }

func (c *compressionFlag) Set(v string) error {
	comp, err := repo.ParseCompression(v)
	*c = compressionFlag(comp)
	return err
}
