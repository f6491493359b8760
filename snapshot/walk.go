package snapshot

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/cofferhq/coffer/repo"
)

// RootNode returns a directory node standing for the snapshot's "/".
func RootNode(sn *Snapshot) *Node {
	return &Node{Name: "/", Type: TypeDir, Subtree: sn.Tree, Mode: 0o755}
}

// AbsPath turns a path given by a user into an absolute snapshot path: a
// relative path (or "") resolves against the snapshot's base directory.
func AbsPath(sn *Snapshot, p string) string {
	if !strings.HasPrefix(p, "/") {
		p = path.Join(sn.Base, p)
	}
	return path.Clean(p)
}

// Resolve returns the node at path p of sn (see AbsPath) and its absolute
// path. "/" yields RootNode.
func Resolve(ctx context.Context, r BlobLoader, sn *Snapshot, p string) (*Node, string, error) {
	abs := AbsPath(sn, p)
	node := RootNode(sn)
	if abs == "/" {
		return node, abs, nil
	}
	walked := ""
	for _, el := range strings.Split(strings.TrimPrefix(abs, "/"), "/") {
		if node.Type != TypeDir {
			return nil, "", fmt.Errorf("%s in snapshot %s: %s is not a directory: %w", abs, sn.ID.Short(), walked, ErrPathNotFound)
		}
		nodes, err := LoadTree(ctx, r, node.Subtree)
		if err != nil {
			return nil, "", err
		}
		walked += "/" + el
		node = findNode(nodes, el)
		if node == nil {
			return nil, "", fmt.Errorf("%s is not in snapshot %s (paths: %s): %w", abs, sn.ID.Short(), strings.Join(sn.Paths, " "), ErrPathNotFound)
		}
	}
	return node, abs, nil
}

// findNode finds name in nodes sorted by name.
func findNode(nodes []*Node, name string) *Node {
	lo, hi := 0, len(nodes)
	for lo < hi {
		mid := (lo + hi) / 2
		if nodes[mid].Name < name {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(nodes) && nodes[lo].Name == name {
		return nodes[lo]
	}
	return nil
}

// Walk calls fn for every node below the directory tree id, depth first
// in name order, with each node's path joined to dir. If fn returns
// fs.SkipDir for a directory, its contents are not visited.
func Walk(ctx context.Context, r BlobLoader, dir string, tree repo.ID, fn func(p string, n *Node) error) error {
	// Subdirectories' trees are loaded and decoded on other goroutines
	// while fn handles the entries before them.
	trees := newPrefetcher(ctx, func(ctx context.Context, id repo.ID) ([]*Node, error) {
		return LoadTree(ctx, r, id)
	})
	defer trees.close()
	return walk(ctx, trees, dir, tree, fn, nil)
}

// walkPastDamage is Walk, except that a directory whose tree cannot be
// loaded is passed to onErr (with its path) and skipped, unless onErr
// returns an error.
func walkPastDamage(ctx context.Context, r BlobLoader, dir string, tree repo.ID, fn func(p string, n *Node) error, onErr func(dir string, err error) error) error {
	trees := newPrefetcher(ctx, func(ctx context.Context, id repo.ID) ([]*Node, error) {
		return LoadTree(ctx, r, id)
	})
	defer trees.close()
	return walk(ctx, trees, dir, tree, fn, onErr)
}

func walk(ctx context.Context, trees *prefetcher[[]*Node], dir string, tree repo.ID, fn func(p string, n *Node) error, onErr func(string, error) error) error {
	nodes, err := trees.take(ctx, tree)
	if err != nil {
		if onErr == nil || ctx.Err() != nil {
			return err
		}
		return onErr(dir, err)
	}
	var subtrees []repo.ID
	for _, n := range nodes {
		if n.Type == TypeDir {
			subtrees = append(subtrees, n.Subtree)
		}
	}
	trees.queue(subtrees)
	defer trees.forget(subtrees) // those fn skipped
	for _, n := range nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := path.Join(dir, n.Name)
		err := fn(p, n)
		if err == fs.SkipDir {
			continue
		}
		if err != nil {
			return err
		}
		if n.Type == TypeDir {
			if err := walk(ctx, trees, p, n.Subtree, fn, onErr); err != nil {
				return err
			}
		}
	}
	return nil
}

// Cat writes a file node's content to w, holes as zeros. Every blob is
// authenticated before any of its bytes are written.
func Cat(ctx context.Context, r BlobLoader, n *Node, w io.Writer) error {
	if n.Type != TypeFile {
		return fmt.Errorf("%s is a %s, not a file", n.Name, n.Type)
	}
	var zeros []byte
	for _, e := range n.Content {
		if e.Hole {
			if zeros == nil {
				zeros = make([]byte, 64<<10)
			}
			for left := e.Size; left > 0; {
				k := min(left, int64(len(zeros)))
				if _, err := w.Write(zeros[:k]); err != nil {
					return err
				}
				left -= k
			}
			continue
		}
		b, err := r.LoadBlob(ctx, repo.BlobData, e.ID)
		if err != nil {
			return err
		}
		if int64(len(b)) != e.Size {
			return &repo.IntegrityError{Kind: "blob", Name: e.ID.String(), Err: fmt.Errorf("holds %d bytes, the tree says %d", len(b), e.Size)}
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}
