package snapshot

// Diff of a snapshot, or a path in it, against the file system: the
// entries on disk are read as the archiver reads them (readMeta,
// clampTimes), so an entry backup would store unchanged compares equal.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/cofferhq/coffer/internal/gitignore"
	"github.com/cofferhq/coffer/repo"
)

// LiveDiffRepository is what DiffLive needs of a repository: its trees,
// and the ids it gives blobs, to tell whether a file on disk holds a
// snapshot's content without downloading it. *repo.Repository is one.
type LiveDiffRepository interface {
	BlobLoader
	BlobID(t repo.BlobType, plaintext []byte) repo.ID
}

// LiveDiffOptions tunes DiffLive.
type LiveDiffOptions struct {
	// Content reads every regular file whose size is the snapshot's.
	// Without it, a file of the same size is read only when its mtime
	// differs (as backup decides what to read, though backup also reads
	// on a changed ctime or inode, which a copy elsewhere always has): a
	// file rewritten at the same size whose mtime was put back is then
	// not reported.
	Content bool
	// Excludes are gitignore patterns, relative to the live root, for
	// entries on disk to leave out, as backup's -exclude.
	Excludes []string
	// SkipPaths are left out on disk (the repository and the cache, as
	// backup leaves them out).
	SkipPaths []string
	// Warn, when set, is told of an entry on disk that cannot be read
	// (permission denied, say), which is then left out of the comparison
	// (neither removed nor modified: what it holds is unknown) and the
	// diff goes on, as a backup goes on past it. Without Warn such an
	// entry fails the diff.
	Warn func(path string, err error)
}

// maxExtent bounds the extent DiffLive reads into memory at once: no
// chunker cuts chunks this large, so a larger one is a damaged tree.
const maxExtent = 1 << 30

// DiffLive compares n, the entry of a snapshot at snapshot path p (as
// Resolve returns them), with the entry at root on disk, and calls fn for
// each difference, in path order, with paths below p. Added, removed,
// modified and metadata-only are as Diff reports them between two
// snapshots. Content is compared by size and mtime (see
// LiveDiffOptions.Content) and, where the file must be read, by cutting it
// at the snapshot's extents and comparing each piece's blob id with the
// recorded one, so no data blob is downloaded. A root that is a symlink is
// followed unless n is a symlink, as backup follows a symlink it is given.
//
// n may be the synthetic root of RootNode, whose own metadata is not
// compared. An entry on disk below root that cannot be read is passed to
// opt.Warn, or fails the diff without it; root itself must exist.
func DiffLive(ctx context.Context, r LiveDiffRepository, p string, n *Node, root string, opt LiveDiffOptions, fn func(Change) error) error {
	d := &liveDiff{r: r, opt: opt, fn: fn, excludes: newExcludes(opt.Excludes), skip: map[string]bool{}}
	for _, s := range opt.SkipPaths {
		if abs, err := filepath.Abs(s); err == nil {
			d.skip[filepath.Clean(abs)] = true
		}
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	if n.Type != TypeSymlink {
		if resolved, err := filepath.EvalSymlinks(root); err == nil {
			root = resolved
		}
	}
	live, err := readMeta(root, path.Base(p), nil)
	if err != nil {
		return err
	}
	_ = clampTimes(live) // as the archiver records it; backup warns about it
	if n.Name == "/" && n.Type == TypeDir && live.Type == TypeDir {
		// The synthetic root has no metadata to compare.
		return d.dir(ctx, p, n.Subtree, root, nil)
	}
	sn := *n
	sn.Name = path.Base(p)
	return d.nodes(ctx, path.Dir(p), &sn, live, root, nil)
}

// liveDiff is one DiffLive.
type liveDiff struct {
	r        LiveDiffRepository
	opt      LiveDiffOptions
	fn       func(Change) error
	excludes gitignore.Matcher
	skip     map[string]bool
	buf      []byte // reused for reading files
}

// liveEntry is an entry of a directory on disk: node is nil when it
// could not be read, for err.
type liveEntry struct {
	name string
	node *Node
	path string
	err  error
}

// unreadable hands err, about the entry on disk at lp, to opt.Warn, or
// returns it when there is none (or the diff was cancelled).
func (d *liveDiff) unreadable(ctx context.Context, lp string, err error) error {
	if d.opt.Warn == nil || ctx.Err() != nil {
		return err
	}
	d.opt.Warn(lp, err)
	return nil
}

// nodes compares the snapshot's entry a with b, read from disk at lp; both
// have the same name, and dir is the snapshot path of their directory.
func (d *liveDiff) nodes(ctx context.Context, dir string, a, b *Node, lp string, rel []string) error {
	p := path.Join(dir, a.Name)
	if a.Type != b.Type {
		if err := reportAll(ctx, d.r, dir, a, Removed, d.fn); err != nil {
			return err
		}
		return d.added(ctx, dir, b, lp, rel)
	}
	if a.Type == TypeDir {
		if !sameMeta(a, b) {
			if err := d.fn(Change{Kind: Metadata, Path: p, Type: a.Type}); err != nil {
				return err
			}
		}
		return d.dir(ctx, p, a.Subtree, lp, rel)
	}
	c := Change{Path: p, Type: a.Type, OldSize: a.Size, NewSize: b.Size}
	modified := a.LinkTarget != b.LinkTarget || a.Rdev != b.Rdev || a.Size != b.Size
	if !modified && a.Type == TypeFile && (d.opt.Content || !a.ModTime.Equal(b.ModTime)) {
		same, err := d.sameContent(ctx, a, lp)
		if err != nil {
			// Unknown content is not reported as modified; its
			// metadata, read already, is still compared.
			if err := d.unreadable(ctx, lp, err); err != nil {
				return err
			}
			same = true
		}
		modified = !same
	}
	switch {
	case modified:
		c.Kind = Modified
	case !sameMeta(a, b):
		c.Kind = Metadata
	default:
		return nil
	}
	return d.fn(c)
}

// dir compares the snapshot directory at p, whose tree is tree, with the
// directory lp on disk, entry by entry in name order.
func (d *liveDiff) dir(ctx context.Context, p string, tree repo.ID, lp string, rel []string) error {
	var na []*Node
	if !tree.IsZero() {
		var err error
		if na, err = LoadTree(ctx, d.r, tree); err != nil {
			return err
		}
	}
	nb, err := d.readDir(lp, rel)
	if err != nil {
		// What the directory holds is unknown: nothing below it is
		// reported removed.
		return d.unreadable(ctx, lp, err)
	}
	i, j := 0, 0
	for i < len(na) || j < len(nb) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if j < len(nb) && nb[j].err != nil && (i >= len(na) || na[i].Name >= nb[j].name) {
			if err := d.unreadable(ctx, nb[j].path, nb[j].err); err != nil {
				return err
			}
			if i < len(na) && na[i].Name == nb[j].name {
				i++ // unknown, so not removed either
			}
			j++
			continue
		}
		switch {
		case j >= len(nb) || (i < len(na) && na[i].Name < nb[j].name):
			if err := reportAll(ctx, d.r, p, na[i], Removed, d.fn); err != nil {
				return err
			}
			i++
		case i >= len(na) || nb[j].name < na[i].Name:
			if err := d.added(ctx, p, nb[j].node, nb[j].path, childRel(rel, nb[j].name)); err != nil {
				return err
			}
			j++
		default:
			if err := d.nodes(ctx, p, na[i], nb[j].node, nb[j].path, childRel(rel, nb[j].name)); err != nil {
				return err
			}
			i, j = i+1, j+1
		}
	}
	return nil
}

// added reports n, read from disk at lp, and everything below it.
func (d *liveDiff) added(ctx context.Context, dir string, n *Node, lp string, rel []string) error {
	p := path.Join(dir, n.Name)
	if err := d.fn(Change{Kind: Added, Path: p, Type: n.Type, NewSize: n.Size}); err != nil {
		return err
	}
	if n.Type != TypeDir {
		return nil
	}
	entries, err := d.readDir(lp, rel)
	if err != nil {
		return d.unreadable(ctx, lp, err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.err != nil {
			if err := d.unreadable(ctx, e.path, e.err); err != nil {
				return err
			}
			continue
		}
		if err := d.added(ctx, p, e.node, e.path, childRel(rel, e.name)); err != nil {
			return err
		}
	}
	return nil
}

// readDir reads the entries of the directory lp, in name order (the order
// of a tree), as the archiver's walk reads them: without what is skipped
// or excluded, and without entries deleted while it reads. An entry that
// cannot be read is returned with its error.
func (d *liveDiff) readDir(lp string, rel []string) ([]liveEntry, error) {
	entries, err := os.ReadDir(lp)
	if err != nil {
		return nil, err // a *PathError that names lp
	}
	out := make([]liveEntry, 0, len(entries))
	for _, e := range entries {
		p := filepath.Join(lp, e.Name())
		if d.skip[p] || d.excludes.Match(childRel(rel, e.Name()), e.IsDir()) {
			continue
		}
		n, err := readMeta(p, e.Name(), nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			out = append(out, liveEntry{name: e.Name(), path: p, err: err})
			continue
		}
		_ = clampTimes(n)
		out = append(out, liveEntry{name: e.Name(), node: n, path: p})
	}
	return out, nil
}

// sameContent reports whether the file at lp holds the content recorded
// in n. It reads the file in pieces of n's extents and compares each
// piece's blob id with the recorded one (a hole must read as zeros), so
// the answer needs no data blob, and it stops at the first difference.
// How the snapshot cut the file (its chunker, chunks split for a small
// pack size) does not matter: the same bytes give the same ids.
func (d *liveDiff) sameContent(ctx context.Context, n *Node, lp string) (bool, error) {
	f, err := openNoAtime(lp)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, e := range n.Content {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		if e.Size < 0 || e.Size > maxExtent {
			return false, fmt.Errorf("%s: the snapshot records an extent of %d bytes: %w", lp, e.Size, repo.ErrCorrupt)
		}
		same, err := d.sameExtent(f, e)
		if err != nil || !same {
			return false, err
		}
	}
	// The file must end where the extents end.
	var one [1]byte
	switch _, err := io.ReadFull(f, one[:]); {
	case errors.Is(err, io.EOF):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("reading %s: %w", lp, err)
	}
	return false, nil
}

// sameExtent reads e's length from f and reports whether it is e.
func (d *liveDiff) sameExtent(f *os.File, e Extent) (bool, error) {
	if e.Hole {
		// A hole is compared in pieces: it may be far larger than a chunk.
		for left := e.Size; left > 0; {
			b := d.read(min(left, 1<<20))
			if _, err := io.ReadFull(f, b); err != nil {
				return false, eofIsDifferent(f, err)
			}
			for _, c := range b {
				if c != 0 {
					return false, nil
				}
			}
			left -= int64(len(b))
		}
		return true, nil
	}
	b := d.read(e.Size)
	if _, err := io.ReadFull(f, b); err != nil {
		return false, eofIsDifferent(f, err)
	}
	return d.r.BlobID(repo.BlobData, b) == e.ID, nil
}

// read returns the reused buffer, n bytes long.
func (d *liveDiff) read(n int64) []byte {
	if int64(cap(d.buf)) < n {
		d.buf = make([]byte, n)
	}
	return d.buf[:n]
}

// eofIsDifferent turns a file that ends early (it shrank since its size
// was read) into a difference, and other errors into errors naming f.
func eofIsDifferent(f *os.File, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return fmt.Errorf("reading %s: %w", f.Name(), err)
}

// childRel returns rel with name appended, without sharing rel's array.
func childRel(rel []string, name string) []string {
	return append(rel[:len(rel):len(rel)], name)
}
