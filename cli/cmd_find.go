package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/cofferhq/coffer/snapshot"
)

type findOptions struct {
	regex        bool
	newer, older timeFlag
}

var findFilesCommand = &command{
	name:     "find",
	usage:    "[flags] pattern...",
	summary:  "list the files and directories matching any pattern in every snapshot (trees only, no file contents)",
	needRepo: true,
	selects:  true,
	flags: func(fs *flag.FlagSet) any {
		o := &findOptions{}
		fs.BoolVar(&o.regex, "regex", false, "the patterns are Go regular expressions searched for in the whole path")
		fs.Var(&o.newer, "newer", "only entries modified at or after `time` (RFC 3339, or 2006-01-02 local time)")
		fs.Var(&o.older, "older", "only entries modified before `time` (RFC 3339, or 2006-01-02 local time)")
		return o
	},
	check: func(_ *app, opts any, args []string) error {
		_, err := opts.(*findOptions).matcher(args)
		return err
	},
	run: runFind,
}

// timeFlag is a point in time given as RFC 3339 or as a date.
type timeFlag struct{ t time.Time }

func (f *timeFlag) String() string {
	if f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

func (f *timeFlag) Set(v string) error {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		f.t = t
		return nil
	}
	// A bare date means its midnight where the user is.
	t, err := time.ParseInLocation(time.DateOnly, v, time.Local)
	if err != nil {
		return fmt.Errorf("%q is not a time: give a date like 2026-01-02 or an RFC 3339 time like 2026-01-02T15:04:05Z", v)
	}
	f.t = t
	return nil
}

// matcher returns what find looks for: the patterns in args, under the
// options.
func (o *findOptions) matcher(args []string) (*snapshot.Matcher, error) {
	if len(args) == 0 {
		return nil, usageError("find needs a pattern, such as '*.go' (quoted, so the shell does not expand it)")
	}
	m, err := snapshot.NewMatcher(snapshot.FindQuery{Patterns: args, Regex: o.regex, Newer: o.newer.t, Older: o.older.t})
	if err != nil {
		return nil, usageError("%v", err)
	}
	return m, nil
}

func runFind(ctx context.Context, a *app, opts any, args []string) error {
	m, err := opts.(*findOptions).matcher(args)
	if err != nil {
		return err
	}
	// Like ls, a damaged snapshot does not hide the others: they are
	// searched, and the error naming it follows.
	sns, listErr := snapshot.List(ctx, a.repo)
	f := snapshot.NewFinder(a.repo, m)
	matches := 0
	for _, sn := range sns {
		if !a.filter.matches(sn) {
			continue
		}
		err := f.Find(ctx, sn, func(p string, n *snapshot.Node) error {
			matches++
			a.printMatch(sn, p, n)
			return nil
		})
		if err != nil {
			return errors.Join(fmt.Errorf("searching snapshot %s: %w", sn.ID.Short(), err), listErr)
		}
	}
	if matches == 0 && listErr == nil {
		// Finding nothing is an answer, not a failure: exit 0, as restic.
		a.out.notice("no matches")
	}
	return listErr
}

// printMatch prints one match a line: snapshot, time, size, path.
func (a *app) printMatch(sn *snapshot.Snapshot, p string, n *snapshot.Node) {
	a.out.result(matchEvent{Type: "match", Snapshot: sn.ID.String(), ShortID: sn.ID.Short(), Path: p, NodeType: n.Type, Size: n.Size, MTime: n.ModTime})
	if n.Type == snapshot.TypeDir {
		p += "/"
	}
	a.out.textf("%s  %s %12d  %s\n", sn.ID.Short(), n.ModTime.UTC().Format("2006-01-02 15:04:05"), n.Size, p)
}
