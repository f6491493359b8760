package cli

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/bytesize"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
)

type pruneOptions struct {
	maxUnused maxUnusedFlag
	dryRun    bool
}

var pruneCommand = &command{
	name:     "prune",
	usage:    "[-max-unused 5%] [-dry-run]",
	summary:  "delete data no snapshot needs, and repack packs that are mostly unneeded",
	needRepo: true,
	lock:     func(any) repo.LockKind { return repo.LockExclusive },
	flags: func(fs *flag.FlagSet) any {
		o := &pruneOptions{maxUnused: maxUnusedFlag(repo.DefaultMaxUnused)}
		fs.Var(&o.maxUnused, "max-unused", "repack until unused data in kept packs is at most this `share` of the used data (like 10%, or unlimited)")
		fs.BoolVar(&o.dryRun, "dry-run", false, "report what would be deleted, repacked and freed, and change nothing")
		return o
	},
	check: noArgs("prune"),
	run: func(ctx context.Context, a *app, opts any, args []string) error {
		o := opts.(*pruneOptions)
		return a.prune(ctx, float64(o.maxUnused), o.dryRun)
	},
}

// maxUnusedFlag is -max-unused: a percentage, or "unlimited" (-1).
type maxUnusedFlag float64

func (m *maxUnusedFlag) String() string {
	if *m < 0 {
		return "unlimited"
	}
	return strconv.FormatFloat(float64(*m)*100, 'f', -1, 64) + "%"
}

func (m *maxUnusedFlag) Set(v string) error {
	if v == "unlimited" {
		*m = -1
		return nil
	}
	n, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
	if err != nil || !strings.HasSuffix(v, "%") || n < 0 || n > 100 {
		return fmt.Errorf("%q is not a share: give a percentage from 0%% to 100%%, like 10%%, or unlimited", v)
	}
	*m = maxUnusedFlag(n / 100)
	return nil
}

func (a *app) prune(ctx context.Context, maxUnused float64, dryRun bool) error {
	prog := a.newProgress("prune", "packs")
	st, err := snapshot.Prune(ctx, a.repo, repo.PruneOptions{MaxUnused: maxUnused, DryRun: dryRun, Logf: a.out.notice, Progress: prog})
	prog.done()
	a.out.result(pruneEvent{head("prune"), dryRun, st})
	if err != nil {
		return err
	}
	a.out.textf("%s, %s: %s used, %s unused; %d not indexed\n", counted(st.Packs, "pack"), bytesize.Format(st.PackBytes),
		bytesize.Format(st.UsedBytes), bytesize.Format(st.UnusedBytes), st.Unindexed)
	if dryRun {
		a.out.textf("would delete %s (%s) and repack %s (%s), freeing about %s (dry run)\n",
			counted(st.DeletePacks, "pack"), bytesize.Format(st.DeleteBytes), counted(st.RepackPacks, "pack"), bytesize.Format(st.RepackBytes), bytesize.Format(st.FreedBytes))
		return nil
	}
	a.out.textf("to delete: %s (%s), to repack: %s (%s, %s written); deleted %s, %s freed\n",
		counted(st.DeletePacks, "pack"), bytesize.Format(st.DeleteBytes), counted(st.RepackPacks, "pack"), bytesize.Format(st.RepackBytes), bytesize.Format(st.CopiedBytes),
		counted(st.Deleted, "pack"), bytesize.Format(st.FreedBytes))
	if st.Spared > 0 {
		a.out.textf("kept %s that snapshots saved during the prune use\n", counted(st.Spared, "pack"))
	}
	if st.RetainedPacks+st.RetainedIndex+st.RetainedSnapshots > 0 {
		a.out.notice("%s", retainedNote(st))
	}
	if st.DeferredPacks > 0 {
		var who []string
		for _, b := range st.Blockers {
			who = append(who, b.String())
		}
		a.out.notice("%d packs (%s) are planned for deletion, but backups that started before this prune may use them (%s): the next prune after they end deletes them",
			st.DeferredPacks, bytesize.Format(st.DeferredBytes), strings.Join(who, "; "))
	}
	return nil
}

// retainedNote says what a retention (S3 Object Lock) kept a prune from
// deleting, until when, and that a later prune deletes it: no failure.
func retainedNote(st repo.PruneStats) string {
	var what []string
	if st.RetainedPacks > 0 {
		what = append(what, fmt.Sprintf("%s (%s)", counted(st.RetainedPacks, "pack"), bytesize.Format(st.RetainedBytes)))
	}
	if st.RetainedIndex > 0 {
		what = append(what, counted(st.RetainedIndex, "index object"))
	}
	if st.RetainedSnapshots > 0 {
		what = append(what, counted(st.RetainedSnapshots, "forgotten snapshot"))
	}
	verb := "are"
	if st.RetainedPacks+st.RetainedIndex+st.RetainedSnapshots == 1 {
		verb = "is"
	}
	when := "until " + st.RetainedUntil.Format(time.RFC3339)
	if !st.RetainedFrom.Equal(*st.RetainedUntil) {
		when = "until " + st.RetainedFrom.Format(time.RFC3339) + " (the last of them until " + st.RetainedUntil.Format(time.RFC3339) + ")"
	}
	return fmt.Sprintf("%s %s retained by Object Lock %s; a prune after that date deletes them",
		strings.Join(what, ", "), verb, when)
}
