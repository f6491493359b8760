package snapshot

// The backed-up paths: cleaning them up, and the walk from "/" down to
// each of them, storing the directories on the way.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/cofferhq/coffer/repo"
)

// ErrNoSuchPath marks a path to back up that does not exist (or runs
// through a file): a typo, with nothing to save.
var ErrNoSuchPath = errors.New("no such file or directory")

// cleanPaths makes paths absolute, sorts them, and drops paths inside
// another one, which are backed up with it. A path below a symlink is kept
// (link/f with link, or with a directory holding link): the walk of the
// other one stores the symlink, not what it points to, so dropping the
// path would lose it; the walk then goes through the link to it (see
// walkChain).
func cleanPaths(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("nothing to back up: give at least one path")
	}
	var out []string
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		if _, err := os.Lstat(abs); errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, fmt.Errorf("backup %s: %w", p, ErrNoSuchPath)
		} else if err != nil {
			return nil, fmt.Errorf("cannot back up %s: %w", p, err)
		}
		if err := checkStreamPath(p, abs); err != nil {
			return nil, err
		}
		out = append(out, filepath.Clean(abs))
	}
	slices.Sort(out)
	out = slices.Compact(out)
	kept := out[:0]
	for _, p := range out {
		if len(kept) > 0 && covered(p, kept[len(kept)-1]) {
			continue
		}
		kept = append(kept, p)
	}
	return kept, nil
}

// covered reports whether backing up dir backs up p: p lies below dir,
// and neither dir nor any directory between them is a symlink.
func covered(p, dir string) bool {
	if !within(p, dir) {
		return false
	}
	for d := filepath.Dir(p); within(d, dir); d = filepath.Dir(d) {
		if fi, err := os.Lstat(d); err != nil || fi.Mode()&os.ModeSymlink != 0 {
			return false
		}
		if d == dir || d == "/" {
			break
		}
	}
	return true
}

// within reports whether p is dir or lies below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// basePath is the directory relative snapshot paths resolve against: a
// single directory itself, otherwise the deepest common parent directory.
func basePath(paths []string) string {
	if len(paths) == 1 {
		// Lstat, as the tree records: a symlink is a leaf, not a directory.
		if fi, err := os.Lstat(paths[0]); err == nil && fi.IsDir() {
			return paths[0]
		}
		return filepath.Dir(paths[0])
	}
	base := filepath.Dir(paths[0])
	for _, p := range paths[1:] {
		for !within(p, base) {
			base = filepath.Dir(base)
		}
	}
	return base
}

// pathTrie holds the directories from "/" down to each backed-up path.
// Below a backed-up directory, it holds the paths given below it that lie
// through a symlink, which the walk must follow.
type pathTrie struct {
	children map[string]*pathTrie
	target   string // set on a backed-up path
}

// walkRoots backs up each path and then stores the trees of the
// directories above them, up to "/".
func (a *archiver) walkRoots(ctx context.Context, paths []string, parent *Snapshot) (repo.ID, error) {
	trie := &pathTrie{children: map[string]*pathTrie{}}
	for _, p := range paths {
		t := trie
		for _, el := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
			if el == "" {
				continue
			}
			if t.children[el] == nil {
				t.children[el] = &pathTrie{children: map[string]*pathTrie{}}
			}
			t = t.children[el]
		}
		t.target = p
	}
	var prevRoot repo.ID
	if parent != nil {
		prevRoot = parent.Tree
	}
	if trie.target != "" { // backing up "/" itself
		rootNode, err := a.readMetaOf("/", "/")
		if err != nil {
			return repo.ID{}, err
		}
		a.addBackedUpFS(rootNode.Device)
		return a.walkTop(ctx, "/", rootNode, prevRoot, trie)
	}
	return a.walkChain(ctx, "/", trie, prevRoot)
}

// walkChain stores an intermediate directory holding only the entries on
// the way to backed-up paths.
func (a *archiver) walkChain(ctx context.Context, dir string, t *pathTrie, prevTree repo.ID) (repo.ID, error) {
	prev := a.loadPrev(ctx, dir, prevTree)
	var nodes []*Node
	names := make([]string, 0, len(t.children))
	for name := range t.children {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		child := t.children[name]
		p := filepath.Join(dir, name)
		n, err := a.readMetaOf(p, name)
		if err != nil {
			return repo.ID{}, err
		}
		if n.Type == TypeSymlink && (child.target == "" || len(child.children) > 0) {
			// A path given through a symlink is backed up under the
			// path given: the link is stored as the directory it points
			// to. A symlink given itself stays a symlink, unless a path
			// below it is given too: then it has to be that directory.
			target := n.LinkTarget
			if n, err = a.followLink(p, name); err != nil {
				return repo.ID{}, err
			}
			if child.target != "" {
				a.prog.Warn(p, fmt.Errorf("is a symlink (to %s), and a path below it is backed up too: backed up as the directory it points to", target))
			}
		}
		if child.target != "" {
			a.addBackedUpFS(n.Device)
		}
		prevNode := prev.node(name)
		var prevSub repo.ID
		if prevNode != nil && prevNode.Type == TypeDir {
			prevSub = prevNode.Subtree
		}
		switch {
		case child.target != "" && n.Type == TypeDir:
			n.Subtree, err = a.walkTop(ctx, p, n, prevSub, child)
		case child.target != "":
			err = a.addTopFile(ctx, p, n, prevNode)
		case n.Type == TypeDir:
			n.Subtree, err = a.walkChain(ctx, p, child, prevSub)
		default:
			err = fmt.Errorf("cannot back up below %s: not a directory", p)
		}
		if err != nil {
			return repo.ID{}, err
		}
		nodes = append(nodes, n)
	}
	return saveTree(ctx, a.saver, nodes)
}

func (a *archiver) readMetaOf(path, name string) (*Node, error) {
	n, err := readMeta(path, name, a.names)
	if err != nil {
		return nil, fmt.Errorf("cannot back up %s: %w", path, err)
	}
	return n, nil
}

// addBackedUpFS records dev as the filesystem of a backed-up path, which
// OneFileSystem walks into.
func (a *archiver) addBackedUpFS(dev uint64) {
	a.devsMu.Lock()
	a.devs[dev] = true
	a.devsMu.Unlock()
}

// backedUpFS reports whether dev is the filesystem of a backed-up path.
// A path given below a symlink adds its filesystem while other walkers
// ask.
func (a *archiver) backedUpFS(dev uint64) bool {
	a.devsMu.Lock()
	defer a.devsMu.Unlock()
	return a.devs[dev]
}

// followLink returns the node of the directory the symlink path points
// to, named name, for a backed-up path that lies through the link.
func (a *archiver) followLink(path, name string) (*Node, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("cannot back up below %s: %w", path, err)
	}
	n, err := readMeta(real, name, a.names)
	if err != nil {
		return nil, fmt.Errorf("cannot back up below %s: %w", path, err)
	}
	if n.Type != TypeDir {
		return nil, fmt.Errorf("cannot back up below %s: it is a symlink to %s, which is a %s, not a directory", path, real, n.Type)
	}
	return n, nil
}

// walkTop backs up a whole directory tree and waits until its tree is
// stored. below holds the paths given below it that the walk must follow.
func (a *archiver) walkTop(ctx context.Context, path string, n *Node, prevTree repo.ID, below *pathTrie) (repo.ID, error) {
	a.dirs.Add(1)
	d := newTopDir(path, n)
	if err := a.walkDir(ctx, d, nil, prevTree, below); err != nil {
		return repo.ID{}, err
	}
	if err := d.wait(ctx); err != nil {
		return repo.ID{}, err
	}
	return n.Subtree, nil
}

// addTopFile backs up a single file given on the command line and waits
// until it is stored.
func (a *archiver) addTopFile(ctx context.Context, path string, n *Node, prev *Node) error {
	d := newTopDir(path, nil) // holds the file; there is no tree to store
	if err := a.addEntry(ctx, d, path, n, prev); err != nil {
		return err
	}
	if err := a.releaseDir(ctx, d); err != nil {
		return err
	}
	return d.wait(ctx)
}
