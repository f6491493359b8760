package snapshot

import (
	"context"

	"github.com/cofferhq/coffer/repo"
)

// TreePrefetcher loads directory trees ahead of a reader that visits them
// depth first, as Walk does, for readers that walk on their own: the FUSE
// mount, where the kernel asks for one directory at a time. Queue the
// subdirectories' trees when entering a directory; Take each when it is
// needed (loaded now if no loader started on it).
type TreePrefetcher struct {
	p *prefetcher[[]*Node]
}

// NewTreePrefetcher starts loaders that read trees from r with ctx until
// Close.
func NewTreePrefetcher(ctx context.Context, r BlobLoader) *TreePrefetcher {
	return &TreePrefetcher{p: newPrefetcher(ctx, func(ctx context.Context, id repo.ID) ([]*Node, error) {
		return LoadTree(ctx, r, id)
	})}
}

// Queue asks for trees to be loaded, the first soonest. Trees already
// queued, and trees past a bound of those loaded and not taken, are left
// out.
func (t *TreePrefetcher) Queue(ids []repo.ID) { t.p.queue(ids) }

// Take returns the nodes of tree id, loaded ahead or now.
func (t *TreePrefetcher) Take(ctx context.Context, id repo.ID) ([]*Node, error) {
	return t.p.take(ctx, id)
}

// Forget drops trees queued or loaded that will not be taken, freeing
// their places under the bound.
func (t *TreePrefetcher) Forget(ids []repo.ID) { t.p.forget(ids) }

// Close stops the loaders.
func (t *TreePrefetcher) Close() { t.p.close() }
