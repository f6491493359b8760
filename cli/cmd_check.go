package cli

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/cofferhq/coffer/internal/bytesize"
	"github.com/cofferhq/coffer/snapshot"
)

type checkOptions struct {
	readData bool
	subset   string
}

// readFraction returns the share of the packs -read-data-subset asks to
// read, 1 without it.
func (o *checkOptions) readFraction() (float64, error) {
	if o.subset == "" {
		return 1, nil
	}
	pct, err := strconv.ParseFloat(strings.TrimSuffix(o.subset, "%"), 64)
	if err != nil || !strings.HasSuffix(o.subset, "%") || pct <= 0 || pct > 100 {
		return 0, usageError("-read-data-subset wants a percentage such as 10%%, got %q", o.subset)
	}
	return pct / 100, nil
}

var checkCommand = &command{
	name:     "check",
	usage:    "[-read-data | -read-data-subset N%]",
	summary:  "verify the repository's structure, and with -read-data every byte of it",
	needRepo: true,
	// A cached copy of an index object or a snapshot would hide damage
	// to the stored one.
	verifiesStore: true,
	flags: func(fs *flag.FlagSet) any {
		o := &checkOptions{}
		fs.BoolVar(&o.readData, "read-data", false, "download and authenticate every pack")
		fs.StringVar(&o.subset, "read-data-subset", "", "download and authenticate a random N% of the packs")
		return o
	},
	check: func(a *app, opts any, args []string) error {
		if err := noArgs("check")(a, opts, args); err != nil {
			return err
		}
		_, err := opts.(*checkOptions).readFraction()
		return err
	},
	run: func(ctx context.Context, a *app, opts any, args []string) error {
		o := opts.(*checkOptions)
		copt := snapshot.CheckOptions{ReadData: o.readData, ReadFraction: 1}
		if o.subset != "" {
			f, err := o.readFraction()
			if err != nil {
				return err
			}
			copt.ReadData, copt.ReadFraction = true, f
		}
		prog := a.newProgress("check", "packs")
		if copt.ReadData {
			copt.Progress = prog
		}
		res, err := snapshot.Check(ctx, a.repo, copt, func(problem error) {
			if a.out.json {
				a.out.result(problemEvent{"problem", problem.Error()})
				return
			}
			a.out.mu.Lock()
			fmt.Fprintf(a.env.Stderr, "error: %s\n", oneLine(problem.Error()))
			a.out.mu.Unlock()
		})
		prog.done()
		if err != nil {
			return err
		}
		a.out.textf("checked %s, %s, %s, %s", counted(res.Snapshots, "snapshot"), counted(res.Trees, "tree"), counted(res.DataBlobs, "data blob"), counted(res.Packs, "pack"))
		if copt.ReadData {
			a.out.textf(" (read %s, %s)", counted(res.PacksRead, "pack"), bytesize.Format(res.BytesRead))
		}
		a.out.textf("\n")
		if res.UnindexedPacks > 0 {
			a.out.textf("%s not indexed yet (left by an interrupted backup, or kept by Object Lock past a prune); prune deletes those no snapshot needs\n", counted(res.UnindexedPacks, "pack is", "packs are"))
		}
		for _, f := range res.Affected {
			a.out.textf("affected: snapshot %s %s (content in pack %s)\n", f.Snapshot.Short(), f.Path, f.Pack.Short())
		}
		if len(res.Affected) > 0 {
			a.out.textf("%s of snapshots use damaged or missing packs: `coffer repair snapshots` rewrites those snapshots without them\n", counted(len(res.Affected), "file"))
		}
		res.Affected = nonNil(res.Affected)
		a.out.result(checkEvent{head("check"), res})
		if res.Problems > 0 {
			a.out.fatal(fmt.Errorf("check found %d problems", res.Problems), ExitCorrupt)
			return errCheckFailed
		}
		a.out.textf("no errors were found\n")
		return nil
	},
}
