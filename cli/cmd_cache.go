package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/cofferhq/coffer/internal/bytesize"
	"github.com/cofferhq/coffer/internal/cachefile"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
	"github.com/cofferhq/coffer/storage/oci"
)

type cacheOptions struct {
	cleanup    bool
	maxAge     withinFlag
	forgetKeys bool
}

var cacheCommand = &command{
	name:    "cache",
	usage:   "[-cleanup [-max-age 30d]] [-forget-keys]",
	summary: "list the local caches, with their sizes and last use, and the keys -key-cache holds; -cleanup removes caches unused for a while",
	noStore: true,
	flags: func(fs *flag.FlagSet) any {
		o := &cacheOptions{maxAge: withinFlag{d: snapshot.Duration{Days: 30}}}
		fs.BoolVar(&o.cleanup, "cleanup", false, "remove the caches not used for -max-age")
		fs.Var(&o.maxAge, "max-age", "with -cleanup: remove caches unused for this long (like 30d, 6m, 1y2m; default 30d)")
		fs.BoolVar(&o.forgetKeys, "forget-keys", false, "remove every repository key -key-cache holds, so that the next commands ask for passphrases")
		return o
	},
	run: runCache,
}

func runCache(_ context.Context, a *app, opts any, args []string) error {
	o := opts.(*cacheOptions)
	if len(args) > 0 {
		return usageError("cache takes no arguments")
	}
	base := a.g.cacheDir
	if base == "" {
		return usageError("no cache directory: -no-cache was given, or the user cache directory is unknown (use -cache-dir)")
	}
	repos, err := repo.Caches(base)
	if err != nil {
		return fmt.Errorf("listing caches in %s: %w", base, err)
	}
	registries, err := oci.Caches(base)
	if err != nil {
		return fmt.Errorf("listing caches in %s: %w", base, err)
	}
	type entry struct {
		kind string
		cachefile.Dir
	}
	var all []entry
	for _, d := range repos {
		all = append(all, entry{"repository", d})
	}
	for _, d := range registries {
		all = append(all, entry{"registry", d})
	}
	slices.SortFunc(all, func(x, y entry) int { return y.Used.Compare(x.Used) })

	d := o.maxAge.d
	cutoff := time.Now().AddDate(-d.Years, -d.Months, -d.Days).Add(-time.Duration(d.Hours) * time.Hour)
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	var total, freed int64
	removed := 0
	for _, e := range all {
		total += e.Size
		state := ""
		if o.cleanup && e.Used.Before(cutoff) {
			if err := os.RemoveAll(e.Path); err != nil {
				return fmt.Errorf("removing cache %s: %w", e.Path, err)
			}
			state, freed, removed = "removed", freed+e.Size, removed+1
		}
		name := e.Name
		if e.kind == "repository" {
			name = e.Name[:8]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\tused %s\t%s\n", e.kind, name, bytesize.Format(e.Size), e.Used.UTC().Format(time.RFC3339), state)
		a.out.result(cacheEvent{Type: "cache", Kind: e.kind, Name: e.Name, Path: e.Path, Bytes: e.Size, Used: e.Used.UTC(), Removed: state == "removed"})
	}
	tw.Flush()
	a.out.textf("%s", table.String())
	a.out.textf("%s in %s, %s\n", counted(len(all), "cache"), base, bytesize.Format(total))
	if o.cleanup {
		a.out.textf("removed %s unused since %s, %s freed\n", counted(removed, "cache"), cutoff.UTC().Format(time.RFC3339), bytesize.Format(freed))
	}
	keys, forgotten, err := a.cachedKeys(o.forgetKeys)
	if err != nil {
		return err
	}
	if o.forgetKeys {
		a.out.textf("forgot %s\n", counted(forgotten, "cached key"))
	}
	for _, k := range keys {
		a.out.textf("key of %s cached until %s\n", k.Location, k.Expires.UTC().Format(time.RFC3339))
	}
	a.out.result(cacheSummaryEvent{head("cache"), base, len(all), total, removed, freed, len(keys), forgotten})
	return nil
}

// cachedKeys lists the keys the key cache holds, after removing them all
// when forget is set, and says how many it removed.
func (a *app) cachedKeys(forget bool) (keys []repo.CachedKey, forgotten int, err error) {
	dir, err := a.keyCacheDir()
	if err != nil {
		if forget {
			return nil, 0, err
		}
		return nil, 0, nil // no key cache here: nothing to list
	}
	kc := &repo.KeyCache{Dir: dir}
	if forget {
		if forgotten, err = kc.Forget(); err != nil {
			return nil, forgotten, err
		}
	}
	keys, err = kc.List()
	return keys, forgotten, err
}
