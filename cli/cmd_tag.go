package cli

import (
	"context"
	"flag"
	"slices"
	"strings"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
)

type tagOptions struct {
	add, remove, set stringList
}

var tagCommand = &command{
	name:     "tag",
	usage:    "[snapshot...] -add TAGS | -remove TAGS | -set TAGS",
	summary:  "add, remove or replace the tags of snapshots (named, or chosen by -host, -tag, -path)",
	needRepo: true,
	selects:  true,
	// A snapshot is rewritten under a new id and the old one removed, as
	// forget removes it.
	lock: func(any) repo.LockKind { return repo.LockExclusive },
	flags: func(fs *flag.FlagSet) any {
		o := &tagOptions{}
		fs.Var(&o.add, "add", "add these comma-separated `tags` (repeatable)")
		fs.Var(&o.remove, "remove", "remove these comma-separated `tags` (repeatable)")
		fs.Var(&o.set, "set", "replace the tags with these comma-separated `tags` (repeatable; -set '' removes them all)")
		return o
	},
	check: checkTag,
	run:   runTag,
}

func checkTag(a *app, opts any, args []string) error {
	o := opts.(*tagOptions)
	switch {
	case len(o.set) > 0 && (len(o.add) > 0 || len(o.remove) > 0):
		return usageError("tag takes -set, or -add and -remove, not both")
	case len(o.set) == 0 && len(o.add) == 0 && len(o.remove) == 0:
		return usageError("tag needs -add TAGS, -remove TAGS or -set TAGS")
	case len(args) == 0 && !a.filter.set():
		return usageError("tag needs snapshot ids, or -host, -tag or -path to choose snapshots (every snapshot: -host with each host)")
	}
	return nil
}

func runTag(ctx context.Context, a *app, opts any, args []string) error {
	o := opts.(*tagOptions)
	sns, err := a.chooseSnapshots(ctx, a.repo, args)
	if err != nil {
		return err
	}
	var changed []string
	for _, sn := range sns {
		tags := retag(sn.Tags, o)
		if slices.Equal(tags, sn.Tags) {
			a.out.textf("snapshot %s unchanged\n", sn.ID.Short())
			continue
		}
		tagged, err := snapshot.Retag(ctx, a.repo, sn, tags)
		if err != nil {
			return err
		}
		changed = append(changed, tagged.ID.String())
		a.out.textf("snapshot %s is now %s [%s]\n", sn.ID.Short(), tagged.ID.Short(), strings.Join(tags, ","))
		a.out.result(retaggedEvent{"retagged", sn.ID.String(), tagged.ID.String(), nonNil(tags)})
	}
	a.out.textf("%d of %s changed\n", len(changed), counted(len(sns), "snapshot"))
	a.out.result(tagEvent{head("tag"), len(changed), len(sns)})
	return nil
}

// retag returns the tags of a snapshot after o's -set, or -add and
// -remove, in order, without duplicates.
func retag(old []string, o *tagOptions) []string {
	var tags []string
	if len(o.set) > 0 {
		for _, list := range o.set {
			tags = append(tags, splitTags(list)...)
		}
	} else {
		tags = slices.Clone(old)
		for _, list := range o.add {
			tags = append(tags, splitTags(list)...)
		}
		var gone []string
		for _, list := range o.remove {
			gone = append(gone, splitTags(list)...)
		}
		tags = slices.DeleteFunc(tags, func(t string) bool { return slices.Contains(gone, t) })
	}
	var out []string
	for _, t := range tags {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}
