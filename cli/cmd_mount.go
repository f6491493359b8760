package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/cofferhq/coffer/mount"
	"github.com/cofferhq/coffer/storage"
)

type mountOptions struct {
	cache sizeFlag // MiB without a unit
	spill sizeFlag // MiB without a unit
	debug bool
}

var mountCommand = &command{
	name:    "mount",
	usage:   "[flags] DIR",
	summary: "serve every snapshot as a read-only file system on DIR (FUSE) until Ctrl-C or umount",
	// The mount point is checked before the repository is opened, so
	// that a mistyped directory is refused before a passphrase prompt.
	needRepo: false,
	flags: func(fs *flag.FlagSet) any {
		o := &mountOptions{cache: sizeFlag{n: mount.DefaultCacheBytes, bare: 1 << 20}, spill: sizeFlag{bare: 1 << 20}}
		fs.Var(&o.cache, "cache", "keep up to this `size` of decrypted file data in memory")
		fs.Var(&o.spill, "spill", "keep up to this `size` of file data fetched ahead of reads on disk (encrypted, in $TMPDIR, removed at unmount; default 256MiB, none for a local repository)")
		fs.BoolVar(&o.debug, "debug", false, "log every FUSE request on stderr")
		return o
	},
	run: func(ctx context.Context, a *app, opts any, args []string) (err error) {
		o := opts.(*mountOptions)
		if len(args) != 1 {
			return usageError("mount takes one directory to mount on, e.g. coffer at R mount /mnt/coffer")
		}
		dir := args[0]
		if err := mount.CheckMountpoint(dir); err != nil {
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		if err := a.openRepo(ctx, "mount", "", true); err != nil {
			return err
		}
		defer func() {
			if cerr := a.closeRepo(); cerr != nil && err == nil {
				err = cerr
			}
		}()
		spill := o.spill.n
		if _, local := a.repo.Store().(storage.LocalPather); local && spill == 0 {
			// A request to a local directory costs little: reads
			// fetch what they need rather than spans to spill.
			spill = -1
		}
		err = mount.Mount(ctx, a.repo, dir, mount.Options{
			CacheBytes: o.cache.n,
			SpillBytes: spill,
			Debug:      o.debug,
			Warn:       func(err error) { a.out.warningf("%v", err) },
			Ready: func(n int) {
				noun := "snapshots"
				if n == 1 {
					noun = "snapshot"
				}
				a.out.textf("coffer mount: %d %s of %s on %s (read-only; Ctrl-C or umount %s to stop)\n", n, noun, a.g.store, dir, dir)
				a.out.result(mountEvent{"mount", dir, n})
			},
		})
		if errors.Is(err, mount.ErrMountpoint) {
			// Changed between the check and the mount.
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		return err
	},
}
