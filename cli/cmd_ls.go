package cli

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/bytesize"
	"github.com/cofferhq/coffer/snapshot"
)

type lsOptions struct{ long, recursive bool }

var lsCommand = &command{
	name:     "ls",
	usage:    "[flags] [snapshot[:path]]",
	summary:  "list snapshots, or the entries of a directory in a snapshot",
	needRepo: true,
	selects:  true,
	// Listing snapshots needs no index: on a registry, loading it was
	// half the requests of a cold ls (docs/benchmarks-log.md, "cold registry
	// reads"). Listing a directory loads it.
	ownIndex: true,
	flags: func(fs *flag.FlagSet) any {
		o := &lsOptions{}
		fs.BoolVar(&o.long, "l", false, "long listing: mode, owner, size, time")
		fs.BoolVar(&o.recursive, "r", false, "list directories recursively")
		return o
	},
	check: func(_ *app, _ any, args []string) error {
		if len(args) > 1 {
			return usageError("ls takes at most one snapshot[:path]")
		}
		return nil
	},
	run: func(ctx context.Context, a *app, opts any, args []string) error {
		if len(args) == 0 {
			return listSnapshots(ctx, a)
		}
		return listEntries(ctx, a, opts.(*lsOptions), args[0])
	},
}

// snapshotLine formats a snapshot exactly as the seed shows it:
// "2026-01-16T22:22:25Z   d61ae1c6   216 MiB        1s /path", then its
// tags, and its host when withHost (a listing of several hosts').
func snapshotLine(sn *snapshot.Snapshot, withHost bool) string {
	line := fmt.Sprintf("%s   %s%10s%10s %s", sn.Time.UTC().Format(time.RFC3339), sn.ID.Short(),
		bytesize.Format(sn.Summary.Size), duration(sn.Summary.Duration), strings.Join(sn.Paths, " "))
	if len(sn.Tags) > 0 {
		line += " [" + strings.Join(sn.Tags, ",") + "]"
	}
	if withHost {
		line += " on " + sn.Host
	}
	return line
}

func listSnapshots(ctx context.Context, a *app) error {
	// A damaged snapshot does not hide the others: they are listed, and
	// the error naming it follows.
	sns, err := snapshot.List(ctx, a.repo)
	sns = slices.DeleteFunc(sns, func(sn *snapshot.Snapshot) bool { return !a.filter.matches(sn) })
	hosts := map[string]bool{}
	for _, sn := range sns {
		hosts[sn.Host] = true
	}
	for _, sn := range sns {
		a.out.textf("%s\n", snapshotLine(sn, len(hosts) > 1))
		a.out.result(newSnapshotEvent(sn))
	}
	return err
}

func listEntries(ctx context.Context, a *app, o *lsOptions, ref string) error {
	id, p := splitRef(ref)
	sn, err := a.findSnapshot(ctx, id)
	if err != nil {
		return err
	}
	if err := a.repo.LoadIndex(ctx); err != nil {
		return err
	}
	node, abs, err := snapshot.Resolve(ctx, a.repo, sn, p)
	if err != nil {
		return err
	}
	if node.Type != snapshot.TypeDir {
		a.printEntry(o, abs, node)
		return nil
	}
	return snapshot.Walk(ctx, a.repo, abs, node.Subtree, func(p string, n *snapshot.Node) error {
		a.printEntry(o, p, n)
		if !o.recursive && n.Type == snapshot.TypeDir {
			return fs.SkipDir
		}
		return nil
	})
}

func (a *app) printEntry(o *lsOptions, p string, n *snapshot.Node) {
	a.out.result(entryEvent{"entry", p, n})
	name := p
	if !o.recursive {
		name = path.Base(p)
	}
	if n.Type == snapshot.TypeDir {
		name += "/"
	}
	if n.Type == snapshot.TypeSymlink && o.long {
		name += " -> " + n.LinkTarget
	}
	if !o.long {
		a.out.textf("%s\n", name)
		return
	}
	owner, group := n.User, n.Group
	if owner == "" {
		owner = fmt.Sprint(n.UID)
	}
	if group == "" {
		group = fmt.Sprint(n.GID)
	}
	a.out.textf("%s %-8s %-8s %10d %s %s\n", n.ModeString(), owner, group, n.Size,
		n.ModTime.UTC().Format(time.RFC3339), name)
}
