package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
)

type forgetOptions struct {
	last, hourly, daily, weekly, monthly, yearly keepCount
	within                                       withinFlag
	keepTags                                     stringList
	groupBy                                      string
	dryRun, allowEmpty, prune                    bool
	maxUnused                                    maxUnusedFlag
}

var forgetCommand = &command{
	name:     "forget",
	aliases:  []string{"rm"},
	usage:    "[flags] [snapshot...]",
	summary:  "remove snapshots, named or chosen by a retention policy (their data goes with prune)",
	needRepo: true,
	selects:  true,
	lock:     func(any) repo.LockKind { return repo.LockExclusive },
	flags: func(fs *flag.FlagSet) any {
		o := &forgetOptions{}
		fs.Var(&o.last, "keep-last", "keep the `n` latest snapshots (-1: all)")
		fs.Var(&o.hourly, "keep-hourly", "keep the latest snapshot of each of the last `n` hours with snapshots")
		fs.Var(&o.daily, "keep-daily", "keep the latest snapshot of each of the last `n` days with snapshots")
		fs.Var(&o.weekly, "keep-weekly", "keep the latest snapshot of each of the last `n` weeks with snapshots")
		fs.Var(&o.monthly, "keep-monthly", "keep the latest snapshot of each of the last `n` months with snapshots")
		fs.Var(&o.yearly, "keep-yearly", "keep the latest snapshot of each of the last `n` years with snapshots")
		fs.Var(&o.within, "keep-within", "keep snapshots newer than `duration` before the latest one (like 1y5m7d2h)")
		fs.Var(&o.keepTags, "keep-tag", "keep snapshots that have all of these comma-separated `tags` (repeatable)")
		fs.StringVar(&o.groupBy, "group-by", "host,paths", "apply the policy to each group of snapshots with the same `fields` (host, paths, tags; \"\" for one group)")
		fs.BoolVar(&o.dryRun, "dry-run", false, "say what would be kept and removed, and why, without removing anything")
		fs.BoolVar(&o.allowEmpty, "allow-empty", false, "let a policy remove every snapshot of a group")
		fs.BoolVar(&o.prune, "prune", false, "run prune afterwards, to delete the data only removed snapshots used")
		o.maxUnused = maxUnusedFlag(repo.DefaultMaxUnused)
		fs.Var(&o.maxUnused, "max-unused", "with -prune: prune's -max-unused `share`")
		return o
	},
	check: checkForget,
	run:   runForget,
}

// keepCount is a -keep-* count: a number from -1 (all) up, and whether
// it was given.
type keepCount struct {
	n   int
	set bool
}

func (k *keepCount) String() string { return strconv.Itoa(k.n) }

func (k *keepCount) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < -1 {
		return fmt.Errorf("%q is not a count: give a number of snapshots, or -1 for all", v)
	}
	k.n, k.set = n, true
	return nil
}

// withinFlag is -keep-within's duration, and whether it was given: 0d
// is a policy too, one that keeps nothing by age.
type withinFlag struct {
	d   snapshot.Duration
	set bool
}

func (w *withinFlag) String() string {
	if w.d.IsZero() {
		return ""
	}
	return w.d.String()
}

func (w *withinFlag) Set(v string) error {
	d, err := snapshot.ParseDuration(v)
	w.d, w.set = d, err == nil
	return err
}

func (o *forgetOptions) policy() snapshot.ExpirePolicy {
	p := snapshot.ExpirePolicy{
		Last: o.last.n, Hourly: o.hourly.n, Daily: o.daily.n, Weekly: o.weekly.n,
		Monthly: o.monthly.n, Yearly: o.yearly.n, Within: o.within.d,
	}
	for _, t := range o.keepTags {
		p.Tags = append(p.Tags, splitTags(t))
	}
	return p
}

// policySet reports whether any -keep-* flag was given (-keep-last 0 and
// -keep-within 0d included: each is a policy that keeps nothing, which
// -allow-empty decides on).
func (o *forgetOptions) policySet() bool {
	return o.last.set || o.hourly.set || o.daily.set || o.weekly.set || o.monthly.set || o.yearly.set ||
		o.within.set || len(o.keepTags) > 0
}

func splitTags(s string) []string {
	var tags []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}

func checkForget(a *app, opts any, args []string) error {
	o := opts.(*forgetOptions)
	switch {
	case len(args) > 0 && (o.policySet() || a.filter.set()):
		return usageError("forget takes snapshot ids or a policy (-keep-*, -host, -tag, -path), not both")
	case len(args) == 0 && !o.policySet():
		return usageError("forget needs snapshot ids, or a policy such as -keep-last 7 -keep-daily 30")
	}
	if _, err := snapshot.ParseGroupBy(o.groupBy); err != nil {
		return usageError("%v", err)
	}
	return nil
}

func runForget(ctx context.Context, a *app, opts any, args []string) error {
	o := opts.(*forgetOptions)
	if err := a.forget(ctx, o, args); err != nil || !o.prune {
		return err
	}
	return a.prune(ctx, float64(o.maxUnused), o.dryRun)
}

func (a *app) forget(ctx context.Context, o *forgetOptions, args []string) error {
	if len(args) > 0 {
		return forgetByID(ctx, a, o, args)
	}
	groupBy, err := snapshot.ParseGroupBy(o.groupBy)
	if err != nil {
		return usageError("%v", err)
	}
	all, err := snapshot.List(ctx, a.repo)
	if err != nil {
		// Deciding what to keep from a partial list could remove what the
		// damaged snapshots would have kept alive in the policy.
		return fmt.Errorf("%w; nothing was removed (fix or forget the damaged snapshots by id first)", err)
	}
	sns := slices.DeleteFunc(all, func(sn *snapshot.Snapshot) bool { return !a.filter.matches(sn) })
	policy := o.policy()
	type decision struct {
		group        snapshot.SnapshotGroup
		keep, remove []*snapshot.Snapshot
		reasons      []snapshot.KeepReason
	}
	var decisions []decision
	var remove []*snapshot.Snapshot
	var emptied []string
	for _, g := range snapshot.GroupSnapshots(sns, groupBy) {
		keep, rm, reasons := snapshot.ApplyPolicy(g.Snapshots, policy)
		if len(keep) == 0 && len(rm) > 0 {
			emptied = append(emptied, g.Key.String())
		}
		decisions = append(decisions, decision{group: g, keep: keep, remove: rm, reasons: reasons})
		remove = append(remove, rm...)
	}
	a.out.textf("Applying policy: %s\n", policy)
	for _, d := range decisions {
		a.printForgetGroup(d.group, d.keep, d.remove, d.reasons)
	}
	if len(emptied) > 0 && !o.allowEmpty {
		return usageError("the policy would remove every snapshot of %s; nothing was removed: keep more (-keep-*), or pass -allow-empty to remove them all",
			strings.Join(emptied, "; "))
	}
	return a.removeSnapshots(ctx, remove, o.dryRun)
}

func forgetByID(ctx context.Context, a *app, o *forgetOptions, prefixes []string) error {
	var remove []*snapshot.Snapshot
	seen := map[repo.ID]bool{}
	// Every id is resolved before anything is removed, so a typo in the
	// last one removes nothing.
	for _, p := range prefixes {
		sn, err := a.findSnapshot(ctx, p)
		if err != nil {
			return fmt.Errorf("%w; nothing was removed", err)
		}
		if !seen[sn.ID] {
			seen[sn.ID] = true
			remove = append(remove, sn)
		}
	}
	return a.removeSnapshots(ctx, remove, o.dryRun)
}

func (a *app) removeSnapshots(ctx context.Context, remove []*snapshot.Snapshot, dryRun bool) error {
	if dryRun {
		for _, sn := range remove {
			a.out.textf("would remove snapshot %s\n", sn.ID.Short())
		}
		a.out.textf("would remove %s (dry run)\n", counted(len(remove), "snapshot"))
		a.out.result(removedEvent{Type: "removed", DryRun: true, Removed: ids(remove)})
		return nil
	}
	done, err := snapshot.Remove(ctx, a.repo, remove)
	for _, sn := range done {
		a.out.textf("removed snapshot %s\n", sn.ID.Short())
	}
	a.out.textf("removed %s\n", counted(len(done), "snapshot"))
	ev := removedEvent{Type: "removed", Removed: ids(done)}
	var retained *snapshot.RetainedError
	if errors.As(err, &retained) {
		// Not a failure: the removal is recorded, and a later prune
		// (or forget) completes it once the retention ends.
		ev.Retained = ids(retained.Snapshots)
		ev.RetainedUntil = &retained.Until
		a.out.notice("%v", retained)
		err = nil
	}
	a.out.result(ev)
	return err
}

func ids(sns []*snapshot.Snapshot) []string {
	out := make([]string, 0, len(sns))
	for _, sn := range sns {
		out = append(out, sn.ID.String())
	}
	return out
}

// printForgetGroup prints restic's table: what a group keeps and why,
// and what it removes.
func (a *app) printForgetGroup(g snapshot.SnapshotGroup, keep, remove []*snapshot.Snapshot, reasons []snapshot.KeepReason) {
	rj := make([]keepReasonEvent, 0, len(reasons))
	why := map[repo.ID][]string{}
	for _, r := range reasons {
		rj = append(rj, keepReasonEvent{r.Snapshot.ID.String(), nonNil(r.Matches)})
		why[r.Snapshot.ID] = r.Matches
	}
	key := g.Key
	key.Paths, key.Tags = nonNil(key.Paths), nonNil(key.Tags)
	a.out.result(groupEvent{"group", key, ids(keep), ids(remove), rj})
	if key := g.Key.String(); key != "" {
		a.out.textf("snapshots for %s:\n", key)
	}
	table := func(title string, sns []*snapshot.Snapshot, withReasons bool) {
		if len(sns) == 0 {
			return
		}
		var buf bytes.Buffer
		tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
		fmt.Fprintf(&buf, "%s %s:\n", title, counted(len(sns), "snapshot"))
		header := "ID\tTime\tHost\tTags\tPaths"
		if withReasons {
			header = "ID\tTime\tHost\tTags\tReasons\tPaths"
		}
		fmt.Fprintln(tw, header)
		for _, sn := range sns {
			cols := []string{sn.ID.Short(), sn.Time.Local().Format(time.DateTime), sn.Host, strings.Join(sn.Tags, ",")}
			if withReasons {
				cols = append(cols, strings.Join(why[sn.ID], ", "))
			}
			cols = append(cols, strings.Join(sn.Paths, " "))
			fmt.Fprintln(tw, strings.Join(cols, "\t"))
		}
		tw.Flush()
		a.out.textf("%s\n", buf.String())
	}
	table("keep", keep, true)
	table("remove", remove, false)
}
