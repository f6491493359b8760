package snapshot

import (
	"context"
	"path"
	"slices"

	"github.com/cofferhq/coffer/repo"
)

// ChangeKind says how a path differs between two snapshots.
type ChangeKind string

// The kinds of change Diff reports.
const (
	Added    ChangeKind = "+"
	Removed  ChangeKind = "-"
	Modified ChangeKind = "M" // content, type or link target changed
	Metadata ChangeKind = "U" // only mode, owner, times or xattrs changed
)

// Change is one difference between two snapshots.
type Change struct {
	Kind    ChangeKind `json:"kind"`
	Path    string     `json:"path"`
	Type    NodeType   `json:"type"`
	OldSize int64      `json:"old_size"`
	NewSize int64      `json:"new_size"`
}

// Diff compares two snapshots' trees from "/" and calls fn for each
// difference, in path order. Identical subtrees (same tree id) are skipped
// without being read, so comparing similar snapshots is cheap.
func Diff(ctx context.Context, r BlobLoader, a, b *Snapshot, fn func(Change) error) error {
	return diffTrees(ctx, r, "/", a.Tree, b.Tree, fn)
}

// DiffNodes compares two entries of snapshots, a at snapshot path p and b
// (as Resolve returns them), and calls fn for each difference, in path
// order, with paths below p: two directories' contents, or two other
// entries as Diff compares them. An entry whose type differs is removed
// and added, with everything below it. The synthetic root of RootNode has
// no metadata of its own to compare.
func DiffNodes(ctx context.Context, r BlobLoader, p string, a, b *Node, fn func(Change) error) error {
	if a.Type == TypeDir && b.Type == TypeDir && (a.Name == "/" || b.Name == "/") {
		return diffTrees(ctx, r, p, a.Subtree, b.Subtree, fn)
	}
	// The two may have different names; both are reported under p.
	ca, cb := *a, *b
	ca.Name, cb.Name = path.Base(p), path.Base(p)
	return diffNodes(ctx, r, path.Dir(p), &ca, &cb, fn)
}

func diffTrees(ctx context.Context, r BlobLoader, dir string, ta, tb repo.ID, fn func(Change) error) error {
	if ta == tb {
		return nil
	}
	var na, nb []*Node
	var err error
	if !ta.IsZero() {
		if na, err = LoadTree(ctx, r, ta); err != nil {
			return err
		}
	}
	if !tb.IsZero() {
		if nb, err = LoadTree(ctx, r, tb); err != nil {
			return err
		}
	}
	i, j := 0, 0
	for i < len(na) || j < len(nb) {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case j >= len(nb) || (i < len(na) && na[i].Name < nb[j].Name):
			if err := reportAll(ctx, r, dir, na[i], Removed, fn); err != nil {
				return err
			}
			i++
		case i >= len(na) || nb[j].Name < na[i].Name:
			if err := reportAll(ctx, r, dir, nb[j], Added, fn); err != nil {
				return err
			}
			j++
		default:
			if err := diffNodes(ctx, r, dir, na[i], nb[j], fn); err != nil {
				return err
			}
			i, j = i+1, j+1
		}
	}
	return nil
}

func diffNodes(ctx context.Context, r BlobLoader, dir string, a, b *Node, fn func(Change) error) error {
	p := path.Join(dir, a.Name)
	if a.Type != b.Type {
		if err := reportAll(ctx, r, dir, a, Removed, fn); err != nil {
			return err
		}
		return reportAll(ctx, r, dir, b, Added, fn)
	}
	if a.Type == TypeDir {
		if !sameMeta(a, b) {
			if err := fn(Change{Kind: Metadata, Path: p, Type: a.Type}); err != nil {
				return err
			}
		}
		return diffTrees(ctx, r, p, a.Subtree, b.Subtree, fn)
	}
	c := Change{Path: p, Type: a.Type, OldSize: a.Size, NewSize: b.Size}
	switch {
	case a.LinkTarget != b.LinkTarget || a.Rdev != b.Rdev || !slices.Equal(a.Content, b.Content):
		c.Kind = Modified
	case !sameMeta(a, b):
		c.Kind = Metadata
	default:
		return nil
	}
	return fn(c)
}

func sameMeta(a, b *Node) bool {
	return a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID && a.ModTime.Equal(b.ModTime) &&
		slices.EqualFunc(a.Xattrs, b.Xattrs, func(x, y Xattr) bool { return x.Name == y.Name && string(x.Value) == string(y.Value) })
}

// reportAll reports n and, for a directory, everything below it.
func reportAll(ctx context.Context, r BlobLoader, dir string, n *Node, kind ChangeKind, fn func(Change) error) error {
	p := path.Join(dir, n.Name)
	c := Change{Kind: kind, Path: p, Type: n.Type}
	if kind == Added {
		c.NewSize = n.Size
	} else {
		c.OldSize = n.Size
	}
	if err := fn(c); err != nil {
		return err
	}
	if n.Type != TypeDir {
		return nil
	}
	return Walk(ctx, r, p, n.Subtree, func(p string, n *Node) error {
		c := Change{Kind: kind, Path: p, Type: n.Type}
		if kind == Added {
			c.NewSize = n.Size
		} else {
			c.OldSize = n.Size
		}
		return fn(c)
	})
}
