package cli

import (
	"context"
	"flag"
)

type unlockOptions struct{ all bool }

var unlockCommand = &command{
	name:     "unlock",
	usage:    "[-remove-all]",
	summary:  "remove stale locks (left by processes that died)",
	needRepo: true,
	flags: func(fs *flag.FlagSet) any {
		o := &unlockOptions{}
		fs.BoolVar(&o.all, "remove-all", false, "remove every lock, also those of processes that may still run")
		return o
	},
	check: noArgs("unlock"),
	run: func(ctx context.Context, a *app, opts any, args []string) error {
		n, err := a.repo.RemoveLocks(ctx, opts.(*unlockOptions).all)
		a.out.textf("removed %s\n", counted(n, "lock"))
		a.out.result(unlockEvent{head("unlock"), n})
		if err == nil && n == 0 && !opts.(*unlockOptions).all {
			locks, _, lerr := a.repo.Locks(ctx)
			for _, l := range locks {
				a.out.textf("still held: %s (live: refreshed %s)\n", l, l.Refreshed.UTC().Format("2006-01-02T15:04:05Z"))
			}
			err = lerr
		}
		return err
	},
}
