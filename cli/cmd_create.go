package cli

import (
	"context"
	"flag"

	"github.com/cofferhq/coffer/repo"
)

type createOptions struct{ packSizeMiB int }

var createCommand = &command{
	name:    "create",
	summary: "create a new repository (the store must be new or empty)",
	flags: func(fs *flag.FlagSet) any {
		o := &createOptions{}
		fs.IntVar(&o.packSizeMiB, "pack-size", repo.DefaultPackSize>>20, "target pack size in MiB")
		return o
	},
	run: func(ctx context.Context, a *app, opts any, args []string) error {
		o := opts.(*createOptions)
		if len(args) > 0 {
			return usageError("create takes no arguments")
		}
		st, err := a.openStore(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		// Refuse early, before asking for a passphrase twice in vain.
		if _, err := repo.ReadFormatVersion(ctx, st); err == nil {
			return repoExists(st.Location())
		}
		pw, err := a.passphrase(true)
		if err != nil {
			return err
		}
		r, err := repo.Create(ctx, st, pw, repo.CreateOptions{PackSize: o.packSizeMiB << 20})
		if err != nil {
			return err
		}
		a.out.textf("created repository %s at %s\n", r.Config().ID[:8], st.Location())
		a.out.result(map[string]any{"type": "created", "id": r.Config().ID, "location": st.Location()})
		return nil
	},
}
