package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"github.com/cofferhq/coffer/internal/cachefile"
	"github.com/cofferhq/coffer/storage"
)

func cachePath(base, repoID string) string { return filepath.Join(base, repoID) }

// LoadIndex reads every index object into the in-memory index. Index
// objects found in the local cache are read from there; others are fetched
// and cached. Cached files are verified against their names like any
// fetched object, so a damaged cache costs a re-download, not a wrong answer.
func (r *Repository) LoadIndex(ctx context.Context) error {
	ids, err := r.ListObjects(ctx, storage.KindIndex)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, id := range ids {
		g.Go(func() error {
			packs, err := r.loadIndexObject(ctx, id)
			if err != nil {
				return err
			}
			for _, p := range packs {
				r.index.Add(p)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	r.pruneCache(ids)
	return nil
}

func (r *Repository) loadIndexObject(ctx context.Context, id ID) ([]PackInfo, error) {
	var sealed []byte
	cached := ""
	if r.cacheDir != "" {
		cached = filepath.Join(r.cacheDir, "index", id.String())
		if b, err := os.ReadFile(cached); err == nil && ID(sha256.Sum256(b)) == id {
			sealed = b
		}
	}
	if sealed == nil {
		b, err := readAll(ctx, r.store, storage.KindIndex, id.String(), maxObjectSize)
		if err != nil {
			return nil, err
		}
		if ID(sha256.Sum256(b)) != id {
			return nil, corrupt(storage.KindIndex, id.String(), "content does not match its name (truncated or altered)")
		}
		sealed = b
		if cached != "" {
			cachefile.Write(cached, b)
		}
	}
	plain, err := r.openObject(storage.KindIndex, id.String(), sealed)
	if err != nil {
		return nil, err
	}
	packs, err := decodeIndex(plain)
	if errors.Is(err, ErrNewerFormat) {
		return nil, fmt.Errorf("index %s: %w", id.Short(), err)
	}
	if err != nil {
		return nil, &IntegrityError{Kind: storage.KindIndex, Name: id.String(), Err: err}
	}
	return packs, nil
}

// pruneCache removes cached index objects the store no longer has.
func (r *Repository) pruneCache(live []ID) {
	if r.cacheDir == "" {
		return
	}
	keep := make(map[string]bool, len(live))
	for _, id := range live {
		keep[id.String()] = true
	}
	entries, _ := os.ReadDir(filepath.Join(r.cacheDir, "index"))
	for _, e := range entries {
		if !keep[e.Name()] {
			_ = os.Remove(filepath.Join(r.cacheDir, "index", e.Name()))
		}
	}
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
