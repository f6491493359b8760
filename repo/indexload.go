package repo

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/cofferhq/coffer/internal/cachefile"
	"github.com/cofferhq/coffer/storage"
)

func cachePath(base, repoID string) string { return filepath.Join(base, repoID) }

// Caches lists the repository caches in the cache directory base (one
// directory per repository, named by its id), with their sizes and when
// a command last opened their repository.
func Caches(base string) ([]cachefile.Dir, error) {
	return cachefile.Dirs(base, func(name string) bool {
		_, err := ParseID(name)
		return err == nil
	})
}

// LoadIndex reads every prune plan, then every index object into the
// in-memory index; packs a plan will delete are condemned there (their
// blobs can be read but not reused). Index objects found in the local
// cache are read from there; others are fetched and cached. Cached files
// are verified against their names like any fetched object, so a damaged
// cache costs a re-download, not a wrong answer.
//
// Plans are read first: a writer must see every plan written before its
// lock (docs/design.md, "Writers and deleters"), so a process holding a
// lock reads them afresh; a reader holds none and may read a condemned
// pack's blobs like any other, so the listing this process read moments
// ago (to find a snapshot) serves, and on a registry saves a request per
// refs tag. An index object a prune replaced since the listing is found
// again by listing anew.
func (r *Repository) LoadIndex(ctx context.Context) error {
	plans, err := r.loadPlans(ctx, r.lock != nil)
	if err != nil {
		return err
	}
	r.plansSeen = make(map[ID]bool, len(plans))
	for _, p := range plans {
		r.index.Condemn(p.Packs)
		r.plansSeen[p.ID] = true
	}
	// The listing LoadPlans just read afresh serves for the index objects
	// too: on a registry, reading it again would cost a request per refs
	// tag.
	return r.addIndexObjects(ctx, false)
}

// refreshIndex adds the index objects written since the index was
// loaded (by backups that ended meanwhile).
func (r *Repository) refreshIndex(ctx context.Context) error {
	return r.addIndexObjects(ctx, true)
}

// addIndexObjects lists the index objects, afresh if refresh is set,
// and loads those not loaded yet. When one vanished since the listing (a
// prune replaced it), it lists again, afresh.
func (r *Repository) addIndexObjects(ctx context.Context, refresh bool) error {
	loaded := map[ID]bool{}
	for _, id := range r.indexLoaded {
		loaded[id] = true
	}
	var ids []ID
	var err error
	for attempt := 0; ; attempt++ {
		if refresh || attempt > 0 {
			storage.Refresh(r.store)
		}
		if ids, err = r.ListObjects(ctx, storage.KindIndex); err != nil {
			return err
		}
		vanished, err := r.loadIndexObjects(ctx, ids, loaded)
		if err == nil || !vanished || attempt == 4 {
			if err != nil {
				return err
			}
			break
		}
	}
	r.indexLoaded = ids
	return nil
}

// loadIndexObjects adds the index objects not loaded yet, and reports
// whether one vanished since the listing (a prune replaced it).
func (r *Repository) loadIndexObjects(ctx context.Context, ids []ID, loaded map[ID]bool) (vanished bool, err error) {
	var todo []ID
	for _, id := range ids {
		if !loaded[id] {
			todo = append(todo, id)
		}
	}
	var mu sync.Mutex // guards b, vanished and loaded
	b := new(indexBuilder)
	// Whatever was loaded goes into the index, also when a later object
	// fails: the retry after a vanished object skips it.
	defer r.index.addBuilt(b)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, id := range todo {
		g.Go(func() error {
			plain, err := r.readIndexObject(gctx, id)
			if errors.Is(err, storage.ErrNotFound) && !errors.Is(err, ErrCorrupt) {
				mu.Lock()
				vanished = true
				mu.Unlock()
				return err
			}
			if err != nil {
				return err
			}
			// Decoded twice: to validate it and count its entries by
			// shard, then straight into b, which has exactly the room.
			var counts shardCounts
			if err := indexDecodeError(id, decodeIndexFunc(plain, counts.count)); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			b.reserve(&counts)
			if err := indexDecodeError(id, decodeIndexFunc(plain, b.add)); err != nil {
				return err // the same bytes decoded a moment ago
			}
			loaded[id] = true
			return nil
		})
	}
	return vanished, g.Wait()
}

// loadIndexObject reads and decodes one index object.
func (r *Repository) loadIndexObject(ctx context.Context, id ID) ([]PackInfo, error) {
	plain, err := r.readIndexObject(ctx, id)
	if err != nil {
		return nil, err
	}
	packs, err := decodeIndex(plain)
	if err := indexDecodeError(id, err); err != nil {
		return nil, err
	}
	return packs, nil
}

// indexDecodeError says which index object could not be decoded.
func indexDecodeError(id ID, err error) error {
	if errors.Is(err, ErrNewerFormat) {
		return fmt.Errorf("index %s: %w", id.Short(), err)
	}
	if err != nil {
		return &IntegrityError{Kind: storage.KindIndex, Name: id.String(), Err: err}
	}
	return nil
}

// readIndexObject returns the plaintext of an index object, from the
// cache if it has it.
func (r *Repository) readIndexObject(ctx context.Context, id ID) ([]byte, error) {
	sealed, err := r.readSealedObject(ctx, storage.KindIndex, id)
	if err != nil {
		return nil, err
	}
	return r.openOwnedObject(storage.KindIndex, id.String(), sealed)
}

// ReadPackTrailer reads and authenticates the trailer of a pack of the
// given size, returning the blobs it lists.
func (r *Repository) ReadPackTrailer(ctx context.Context, pack ID, size int64) ([]PackEntry, error) {
	// One request usually covers tail and trailer: a 32 MiB pack of 1 MiB
	// chunks has a trailer of about 2 KiB.
	want := min(size, 16<<10)
	if want < packTailSize {
		return nil, corrupt(storage.KindPack, pack.String(), "only %d bytes long", size)
	}
	buf, err := r.readPack(ctx, pack, size-want, want)
	if err != nil {
		return nil, err
	}
	n, err := parsePackTail(buf[len(buf)-packTailSize:], size)
	if errors.Is(err, ErrNewerFormat) {
		return nil, fmt.Errorf("pack %s: %w", pack.Short(), err)
	}
	if err != nil {
		return nil, &IntegrityError{Kind: storage.KindPack, Name: pack.String(), Err: err}
	}
	var sealed []byte
	if int64(n)+packTailSize <= want {
		sealed = buf[len(buf)-packTailSize-n : len(buf)-packTailSize]
	} else {
		sealed, err = r.readPack(ctx, pack, size-packTailSize-int64(n), int64(n))
		if err != nil {
			return nil, err
		}
	}
	plain, err := r.codec.open(nil, sealed, objectAD("pack trailer", packVersion))
	if err != nil {
		return nil, &IntegrityError{Kind: storage.KindPack, Name: pack.String(), Err: fmt.Errorf("trailer: %w", err)}
	}
	entries, err := decodeTrailer(plain, size-packTailSize-int64(n))
	if err != nil {
		return nil, &IntegrityError{Kind: storage.KindPack, Name: pack.String(), Err: fmt.Errorf("trailer: %w", err)}
	}
	return entries, nil
}
