package cli

import (
	"context"
	"flag"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage"
)

type createOptions struct {
	packSize   sizeFlag // MiB without a unit
	from       string
	objectLock int // days
}

// maxObjectLockDays bounds -object-lock: S3's longest retention is 100
// years.
const maxObjectLockDays = 36500

var createCommand = &command{
	name:    "create",
	summary: "create a new repository (the store must be new or empty)",
	flags: func(fs *flag.FlagSet) any {
		o := &createOptions{}
		o.packSize = sizeFlag{bare: 1 << 20} // n stays 0 unless given
		fs.Var(&o.packSize, "pack-size", "the `size` of packs backups make unless they say otherwise (backup -pack-size), from 1MiB to 1GiB; a number is MiB (default 32MiB; with -from, that repository's)")
		fs.StringVar(&o.from, "from", "", "share the master key and chunker of the repository at this `store`, so that sync copies packs between the two as they are (its passphrase: -other-passphrase-file)")
		fs.IntVar(&o.objectLock, "object-lock", 0, "on an s3 store whose bucket has Object Lock enabled, write every object but locks and plans with a COMPLIANCE retention of this many `days`, so that no credential can delete backups younger than that (docs/s3.md)")
		return o
	},
	run: func(ctx context.Context, a *app, opts any, args []string) error {
		o := opts.(*createOptions)
		if len(args) > 0 {
			return usageError("create takes no arguments")
		}
		packSizeGiven := o.packSize.n != 0
		if !packSizeGiven {
			n, err := a.storePackSize()
			if err != nil {
				return err
			}
			o.packSize.n, packSizeGiven = n, n != 0
		}
		if !packSizeGiven {
			o.packSize.n = repo.DefaultPackSize
		}
		if n := o.packSize.n; n < repo.MinConfigPackSize || n > repo.MaxPackSize {
			return usageError("create -pack-size %s: give a size from 1MiB to 1GiB", &o.packSize)
		}
		if o.objectLock < 0 || o.objectLock > maxObjectLockDays {
			return usageError("create -object-lock %d: give a number of days from 1 to %d", o.objectLock, maxObjectLockDays)
		}
		a.objectLockDays = o.objectLock
		st, err := a.openStore(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		if scheme, _ := storage.Scheme(st.Location()); o.objectLock > 0 && scheme != "s3" {
			return usageError("create -object-lock works on s3 stores only (a bucket with Object Lock enabled), not on %s", st.Location())
		}
		// Refuse early, before asking for a passphrase twice in vain.
		if _, err := repo.ReadSealedConfig(ctx, st); err == nil {
			return repoExists(st.Location())
		}
		pw, err := a.passphrase(ctx, true)
		if err != nil {
			return err
		}
		copts := repo.CreateOptions{PackSize: int(o.packSize.n)}
		if o.from != "" {
			a.pw = pw // tried first on the other repository
			from, err := a.openOther(ctx, o.from)
			if err != nil {
				return err
			}
			defer from.close()
			copts.ShareKeysWith = from.Repository
			if !packSizeGiven {
				copts.PackSize = from.Config().PackSize
			}
		}
		r, err := repo.Create(ctx, st, pw, copts)
		if err != nil {
			return err
		}
		a.out.textf("created repository %s at %s\n", r.Config().ID[:8], st.Location())
		a.out.result(createdEvent{"created", r.Config().ID, st.Location()})
		return nil
	},
}
