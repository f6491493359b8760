package cli

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/all"
)

var storeCommand = &command{
	name:    "store",
	usage:   "add NAME LOCATION [key=value...] | list | rm NAME",
	summary: "name stores, with their options, for `coffer at @NAME` (see README: named stores)",
	noStore: true,
	run:     runStore,
}

func runStore(ctx context.Context, a *app, _ any, args []string) error {
	if len(args) == 0 {
		return usageError("store needs add, list or rm, as in coffer store add prod oci://ghcr.io/acme/backups passphrase-command='pass show coffer'")
	}
	cfg, path, err := a.loadConfig()
	if err != nil {
		return err
	}
	switch args[0] {
	case "add":
		if len(args) < 3 {
			return usageError("store add needs a NAME and a LOCATION, then key=value options")
		}
		name, location := args[1], args[2]
		if !validStoreName(name) {
			return usageError("store name %q: use letters, digits, '-', '_' and '.', starting with a letter or digit", name)
		}
		if _, exists := cfg.Stores[name]; exists {
			return usageError("a store named %q exists already: coffer store rm %s first", name, name)
		}
		if strings.HasPrefix(location, "@") {
			return usageError("store add %s %s: give a location, not another store's name", name, location)
		}
		// A location the command line would refuse is refused now,
		// not at its first use.
		if err := all.Registry(all.Options{}).Check(location); err != nil {
			return err
		}
		if scheme, _ := storage.Scheme(location); scheme == storage.LocalScheme && !strings.HasPrefix(location, storage.LocalScheme+"://") {
			// Named to be used from anywhere: a relative path would
			// move with the working directory.
			abs, err := filepath.Abs(location)
			if err != nil {
				return err
			}
			location = abs
		}
		sc := &storeConfig{Location: location}
		for _, kv := range args[3:] {
			key, value, ok := strings.Cut(kv, "=")
			if !ok {
				return usageError("store option %q: write it as key=value", kv)
			}
			if err := sc.set(key, value); err != nil {
				return usageError("%v", err)
			}
		}
		cfg.Stores[name] = sc
		if err := saveConfig(path, cfg); err != nil {
			return err
		}
		a.out.textf("store @%s is %s (in %s)\n", name, location, path)
		a.out.result(storeEvent{"store", name, location, nonNil(sc.options()), path})
		return nil
	case "list", "ls":
		if len(args) > 1 {
			return usageError("store list takes no arguments")
		}
		names := make([]string, 0, len(cfg.Stores))
		for n := range cfg.Stores {
			names = append(names, n)
		}
		slices.Sort(names)
		var table bytes.Buffer
		tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
		for _, n := range names {
			sc := cfg.Stores[n]
			fmt.Fprintf(tw, "@%s\t%s\t%s\n", n, sc.Location, strings.Join(sc.options(), " "))
			a.out.result(storeEvent{Type: "store", Name: n, Location: sc.Location, Options: nonNil(sc.options())})
		}
		tw.Flush()
		a.out.textf("%s", table.String())
		return nil
	case "rm", "remove":
		if len(args) != 2 {
			return usageError("store rm takes one NAME")
		}
		name := strings.TrimPrefix(args[1], "@")
		if _, ok := cfg.Stores[name]; !ok {
			return usageError("no store named %q in %s (coffer store list)", name, path)
		}
		delete(cfg.Stores, name)
		if err := saveConfig(path, cfg); err != nil {
			return err
		}
		a.out.textf("store @%s removed (its repository is untouched)\n", name)
		a.out.result(storeEvent{Type: "store_removed", Name: name, Options: []string{}})
		return nil
	}
	return usageError("store %s: use add, list or rm", args[0])
}
