package snapshot

import (
	"context"
	"runtime"
	"sync"

	"github.com/cofferhq/coffer/repo"
)

// maxPrefetched bounds the parent trees loaded ahead of the walk and not
// yet used, and so the memory they hold.
const maxPrefetched = 256

// prefetcher loads trees ahead of a depth-first walk: when the walk enters
// a directory, the trees of its subdirectories are loaded and decoded by
// other goroutines while the walk handles the directory's entries. A backup
// uses it for the parent snapshot's trees (decoding them is most of an
// incremental backup's CPU time when little changed, and its walk mostly
// waits for lstat), Walk for the trees it visits.
//
// Trees are loaded last-queued first, because the walk is depth first: it
// next needs the subdirectories of the directory it just entered. A tree
// the walk asks for before a loader started on it is loaded by the walk
// itself, so the walk never waits behind trees it does not need yet.
type prefetcher[T any] struct {
	load func(ctx context.Context, id repo.ID) (T, error)

	mu      sync.Mutex
	wake    *sync.Cond
	stack   []repo.ID                      // queued, not started; next is last
	futures map[repo.ID]*prefetchedTree[T] // queued, loading or loaded, not yet taken
	closed  bool
	loaders sync.WaitGroup
}

type prefetchedTree[T any] struct {
	started bool
	done    chan struct{}
	val     T
	err     error
}

func newPrefetcher[T any](ctx context.Context, load func(context.Context, repo.ID) (T, error)) *prefetcher[T] {
	p := &prefetcher[T]{load: load, futures: make(map[repo.ID]*prefetchedTree[T])}
	p.wake = sync.NewCond(&p.mu)
	for range runtime.GOMAXPROCS(0) {
		p.loaders.Go(func() { p.loadQueued(ctx) })
	}
	return p
}

// queue asks for the trees ids to be loaded, the first of them soonest.
func (p *prefetcher[T]) queue(ids []repo.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(ids) - 1; i >= 0; i-- {
		id := ids[i]
		if id.IsZero() || p.futures[id] != nil || len(p.futures) >= maxPrefetched {
			continue
		}
		p.futures[id] = &prefetchedTree[T]{done: make(chan struct{})}
		p.stack = append(p.stack, id)
	}
	p.wake.Broadcast()
}

// take returns tree id, loaded ahead or now.
func (p *prefetcher[T]) take(ctx context.Context, id repo.ID) (T, error) {
	p.mu.Lock()
	f := p.futures[id]
	delete(p.futures, id)
	if f != nil && !f.started {
		f.started = true // the walk loads it; a loader popping it skips it
		f = nil
	}
	p.mu.Unlock()
	if f == nil {
		return p.load(ctx, id)
	}
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

func (p *prefetcher[T]) loadQueued(ctx context.Context) {
	for {
		p.mu.Lock()
		for len(p.stack) == 0 && !p.closed {
			p.wake.Wait()
		}
		if p.closed {
			p.mu.Unlock()
			return
		}
		id := p.stack[len(p.stack)-1]
		p.stack = p.stack[:len(p.stack)-1]
		f := p.futures[id]
		if f == nil || f.started {
			p.mu.Unlock()
			continue
		}
		f.started = true
		p.mu.Unlock()
		f.val, f.err = p.load(ctx, id)
		close(f.done)
	}
}

// forget drops the trees ids that were queued or loaded and not taken
// (directories gone since the parent snapshot), freeing their slots.
func (p *prefetcher[T]) forget(ids []repo.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range ids {
		delete(p.futures, id)
	}
}

// close stops the loaders once the walk is over.
func (p *prefetcher[T]) close() {
	p.mu.Lock()
	p.closed = true
	p.wake.Broadcast()
	p.mu.Unlock()
	p.loaders.Wait()
}
