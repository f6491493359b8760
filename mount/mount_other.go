//go:build !linux && !darwin && !freebsd

package mount

import (
	"context"
	"fmt"
	"runtime"

	"github.com/cofferhq/coffer/repo"
)

// Mount would serve the snapshots of r on dir: go-fuse has no support for
// this operating system, so it says so.
func Mount(ctx context.Context, r *repo.Repository, dir string, opt Options) error {
	return fmt.Errorf("%w (%s): restore a snapshot, or browse it with coffer ui", ErrNotSupported, runtime.GOOS)
}
