package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"

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
		defer moreProcs(a.env.Getenv("GOMAXPROCS"))()
		spill := o.spill.n
		if _, local := a.repo.Store().(storage.LocalPather); local && spill == 0 {
			// A request to a local directory costs little: reads
			// fetch what they need rather than spans to spill.
			spill = -1
		}
		var debugLog io.Writer
		if o.debug {
			debugLog = a.out.stderrWriter()
		}
		err = mount.Mount(ctx, a.repo, dir, mount.Options{
			CacheBytes: o.cache.n,
			SpillBytes: spill,
			DebugLog:   debugLog,
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

// moreProcs lets Go run twice as many goroutines at once as it would by
// default, until the returned function puts the default back, unless
// the user set GOMAXPROCS (env is its value). A FUSE request's goroutine
// wakes from its read of /dev/fuse needing a P; with as many Ps as cores,
// the mount's decryption ahead of reads holds them all, and the request
// (and the reader blocked on it: tar, cp) waits up to a scheduler time
// slice. With more Ps than cores the kernel schedules the woken thread at
// once: `tar c` of a mount 8-12% faster (docs/benchmarks.md, "mount").
func moreProcs(env string) (restore func()) {
	if env != "" {
		return func() {}
	}
	runtime.SetDefaultGOMAXPROCS()
	runtime.GOMAXPROCS(2 * runtime.GOMAXPROCS(0))
	return runtime.SetDefaultGOMAXPROCS
}
