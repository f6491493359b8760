package cli

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
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

// findSnapshot resolves a snapshot name in the command's repository: an
// id prefix, or `latest` (see findSnapshotIn).
func (a *app) findSnapshot(ctx context.Context, name string) (*snapshot.Snapshot, error) {
	return a.findSnapshotIn(ctx, a.repo, name)
}

// findSnapshotIn resolves a snapshot name in r: an id prefix, or `latest`,
// the newest snapshot that -host, -tag and -path select; without -host,
// the newest of this machine's host name when r holds any, so that in a
// repository several machines share, `latest` is this machine's, as
// backup's parent is.
func (a *app) findSnapshotIn(ctx context.Context, r *repo.Repository, name string) (*snapshot.Snapshot, error) {
	if name != "latest" {
		return snapshot.Find(ctx, r, name)
	}
	sns, err := snapshot.List(ctx, r)
	if err != nil {
		return nil, err
	}
	if len(sns) == 0 {
		return nil, fmt.Errorf("latest: the repository has no snapshots: %w", snapshot.ErrSnapshotNotFound)
	}
	sns = slices.DeleteFunc(sns, func(sn *snapshot.Snapshot) bool { return !a.filter.matches(sn) })
	host := ""
	if len(a.filter.hosts) == 0 {
		host, _ = os.Hostname()
	}
	sn := snapshot.Latest(sns, host)
	if sn == nil {
		return nil, fmt.Errorf("latest: no snapshot matches -host, -tag and -path (%s): %w", a.filter.String(), snapshot.ErrSnapshotNotFound)
	}
	return sn, nil
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// setString is a string flag that knows whether it was given, so that an
// empty value given is told from none.
type setString struct {
	s   string
	set bool
}

func (f *setString) String() string { return f.s }

func (f *setString) Set(v string) error {
	f.s, f.set = v, true
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

// sizeFlag is a size in bytes, written with a binary unit (512KiB, 5MiB,
// 1GiB; or k, m, g as nginx's client_max_body_size writes them) or, with
// none, in the flag's bare unit. Decimal units (KB, MB) are refused:
// which one is meant is a guess, and a guess near a proxy's limit fails.
type sizeFlag struct {
	n    int64 // 0 when not given
	bare int64 // the unit of a number without one
}

func (s *sizeFlag) String() string {
	if s == nil || s.n == 0 {
		return ""
	}
	for _, u := range []struct {
		name string
		n    int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s.n%u.n == 0 {
			return strconv.FormatInt(s.n/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(s.n, 10) + "B"
}

func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v, s.bare)
	if err != nil {
		return err
	}
	s.n = n
	return nil
}

// parseSize parses a size for sizeFlag.
func parseSize(v string, bare int64) (int64, error) {
	v = strings.TrimSpace(v)
	i := strings.IndexFunc(v, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := v, ""
	if i >= 0 {
		num, unit = v[:i], strings.TrimSpace(v[i:])
	}
	mult := map[string]int64{"": bare, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30}[strings.ToLower(unit)]
	f, err := strconv.ParseFloat(num, 64)
	switch {
	case err != nil || num == "":
		return 0, fmt.Errorf("%q is not a size: write it like 512KiB or 5MiB", v)
	case mult == 0:
		return 0, fmt.Errorf("%q: unknown unit %q: write KiB, MiB or GiB (1024-based), like 512KiB", v, unit)
	case f <= 0 || f*float64(mult) > 1<<50:
		return 0, fmt.Errorf("%q is not a positive size: write it like 512KiB or 5MiB", v)
	}
	return int64(f * float64(mult)), nil
}

// ownLocalPaths returns the local directories of the repository (when its
// store is one) and of the cache, which backup never stores and diff
// against the file system leaves out likewise.
func (a *app) ownLocalPaths() []string {
	var paths []string
	if lp, ok := a.repo.Store().(storage.LocalPather); ok {
		paths = append(paths, lp.LocalPath())
	}
	if a.g.cacheDir != "" {
		paths = append(paths, a.g.cacheDir)
	}
	return paths
}
