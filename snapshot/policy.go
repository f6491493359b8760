package snapshot

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The retention policy of `coffer forget` follows restic's
// (internal/data/snapshot_policy.go and snapshot_group.go) so that a
// policy moved over from restic keeps the same snapshots.

// ExpirePolicy says which snapshots of one group to keep. A count of -1
// keeps one snapshot from every bucket of its kind; 0 leaves the kind
// unused. A policy with nothing set keeps nothing: callers must refuse
// to apply it unless removing everything is really wanted.
type ExpirePolicy struct {
	Last    int // the newest n snapshots
	Hourly  int // the newest snapshot of each of the last n hours that have one
	Daily   int // likewise per calendar day
	Weekly  int // likewise per ISO week
	Monthly int // likewise per calendar month
	Yearly  int // likewise per calendar year

	// Within keeps every snapshot taken after the group's newest snapshot
	// minus Within. It is measured from the newest snapshot rather than
	// from now so that a group that stopped being backed up is not
	// emptied just by time passing.
	Within Duration

	// Tags keeps every snapshot carrying all tags of at least one list.
	// A list holding only "" matches snapshots without tags, as in restic.
	Tags [][]string
}

// Empty reports whether nothing is set. An empty policy keeps nothing.
func (p ExpirePolicy) Empty() bool {
	return p.Last == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 &&
		p.Monthly == 0 && p.Yearly == 0 && p.Within.IsZero() && len(p.Tags) == 0
}

// String describes the policy in restic's words, for example
// "keep 2 latest, 7 daily snapshots and all snapshots with tags [[a, b]]
// and all snapshots within 3d of the newest". An empty policy is "remove".
func (p ExpirePolicy) String() string {
	var counts []string
	for _, c := range []struct {
		n    int
		name string
	}{
		{p.Last, "latest"}, {p.Hourly, "hourly"}, {p.Daily, "daily"},
		{p.Weekly, "weekly"}, {p.Monthly, "monthly"}, {p.Yearly, "yearly"},
	} {
		switch {
		case c.n > 0:
			counts = append(counts, fmt.Sprintf("%d %s", c.n, c.name))
		case c.n == -1:
			counts = append(counts, "all "+c.name)
		}
	}
	var parts []string
	if len(counts) > 0 {
		parts = append(parts, strings.Join(counts, ", ")+" snapshots")
	}
	if len(p.Tags) > 0 {
		lists := make([]string, len(p.Tags))
		for i, l := range p.Tags {
			lists[i] = tagListString(l)
		}
		parts = append(parts, "all snapshots with tags ["+strings.Join(lists, " ")+"]")
	}
	if !p.Within.IsZero() {
		parts = append(parts, "all snapshots within "+p.Within.String()+" of the newest")
	}
	if len(parts) == 0 {
		return "remove"
	}
	return "keep " + strings.Join(parts, " and ")
}

func tagListString(l []string) string { return "[" + strings.Join(l, ", ") + "]" }

// KeepCounters are the counts a policy has left after deciding on one
// snapshot; -1 stays -1 (unlimited). They let `forget` show how far down
// the list each kind reached.
type KeepCounters struct {
	Last    int `json:"last,omitempty"`
	Hourly  int `json:"hourly,omitempty"`
	Daily   int `json:"daily,omitempty"`
	Weekly  int `json:"weekly,omitempty"`
	Monthly int `json:"monthly,omitempty"`
	Yearly  int `json:"yearly,omitempty"`
}

// KeepReason says why one snapshot is kept.
type KeepReason struct {
	Snapshot *Snapshot `json:"snapshot"`
	// Matches are restic's phrases: "last snapshot", "daily snapshot",
	// "oldest monthly snapshot", "within 3d", "has tags [a, b]" and so on.
	Matches  []string     `json:"matches"`
	Counters KeepCounters `json:"counters"`
}

// Bucket functions map a snapshot to the period it falls in; two
// snapshots compete for one kept slot exactly when their values match.
// Times are bucketed in the location they carry, as restic does.
func bucketHour(t time.Time, _ int) int {
	return t.Year()*1000000 + int(t.Month())*10000 + t.Day()*100 + t.Hour()
}

func bucketDay(t time.Time, _ int) int {
	return t.Year()*10000 + int(t.Month())*100 + t.Day()
}

func bucketWeek(t time.Time, _ int) int {
	y, w := t.ISOWeek()
	return y*100 + w
}

func bucketMonth(t time.Time, _ int) int { return t.Year()*100 + int(t.Month()) }

func bucketYear(t time.Time, _ int) int { return t.Year() }

// bucketEach gives every snapshot its own bucket, even one sharing its
// time with another, so --keep-last counts snapshots, not instants.
func bucketEach(_ time.Time, nr int) int { return nr }

// ApplyPolicy decides which snapshots of one group p keeps. keep and
// remove partition list, each newest first; reasons[i] explains keep[i].
// list itself is not reordered.
//
// Snapshots are walked newest first. For each kind with a count left, a
// snapshot is kept if its bucket differs from that of the last snapshot
// the kind kept, which uses up one count. As in restic, the oldest
// snapshot is also kept while a kind still has counts left, because
// keeping it gives the longest history the policy allows.
func ApplyPolicy(list []*Snapshot, p ExpirePolicy) (keep, remove []*Snapshot, reasons []KeepReason) {
	if len(list) == 0 {
		return nil, nil, nil
	}
	sorted := slices.Clone(list)
	// Restic sorts stably, so equal times keep the order snapshots were
	// listed in; ordering those by id instead gives the same answer
	// whatever order the caller passes and matches List's order.
	slices.SortStableFunc(sorted, func(a, b *Snapshot) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})

	kinds := [6]struct {
		count  int
		bucket func(time.Time, int) int
		last   int
		reason string
	}{
		{p.Last, bucketEach, -1, "last snapshot"},
		{p.Hourly, bucketHour, -1, "hourly snapshot"},
		{p.Daily, bucketDay, -1, "daily snapshot"},
		{p.Weekly, bucketWeek, -1, "weekly snapshot"},
		{p.Monthly, bucketMonth, -1, "monthly snapshot"},
		{p.Yearly, bucketYear, -1, "yearly snapshot"},
	}

	var cutoff time.Time
	if !p.Within.IsZero() {
		cutoff = p.Within.before(newestPast(sorted, time.Now()))
	}

	for nr, sn := range sorted {
		var matches []string
		for _, l := range p.Tags {
			if hasTags(sn, l) {
				matches = append(matches, "has tags "+tagListString(l))
			}
		}
		if !p.Within.IsZero() && sn.Time.After(cutoff) {
			matches = append(matches, "within "+p.Within.String())
		}
		oldest := nr == len(sorted)-1
		for i := range kinds {
			k := &kinds[i]
			if k.count == 0 || k.count < -1 {
				continue
			}
			v := k.bucket(sn.Time, nr)
			if v == k.last && !oldest {
				continue
			}
			reason := k.reason
			if v == k.last {
				reason = "oldest " + reason
			}
			k.last = v
			if k.count > 0 {
				k.count--
			}
			matches = append(matches, reason)
		}
		if len(matches) == 0 {
			remove = append(remove, sn)
			continue
		}
		keep = append(keep, sn)
		reasons = append(reasons, KeepReason{
			Snapshot: sn,
			Matches:  matches,
			Counters: KeepCounters{
				Last: kinds[0].count, Hourly: kinds[1].count, Daily: kinds[2].count,
				Weekly: kinds[3].count, Monthly: kinds[4].count, Yearly: kinds[5].count,
			},
		})
	}
	return keep, remove, reasons
}

// newestPast returns the time of the newest snapshot not after now. A
// snapshot from a machine whose clock ran ahead would otherwise move the
// Within window forward and drop snapshots that are in fact recent;
// restic ignores such snapshots here for the same reason.
func newestPast(list []*Snapshot, now time.Time) time.Time {
	var newest time.Time
	for _, sn := range list {
		if sn.Time.After(newest) && sn.Time.Before(now) {
			newest = sn.Time
		}
	}
	return newest
}

// hasTags reports whether sn carries every tag of l. A "" in l matches a
// snapshot without tags, which is how an empty --keep-tag in restic
// keeps untagged snapshots.
func hasTags(sn *Snapshot, l []string) bool {
	for _, tag := range l {
		if tag == "" && len(sn.Tags) == 0 {
			return true
		}
		if !slices.Contains(sn.Tags, tag) {
			return false
		}
	}
	return true
}

// Duration is a calendar span for --keep-within: years and months have
// their calendar length, so "1m" back from March 31 is March 2 or 3
// (time.AddDate's normalisation), not a fixed number of hours.
type Duration struct {
	Years, Months, Days, Hours int
}

// IsZero reports whether d spans nothing, which leaves Within unused.
func (d Duration) IsZero() bool { return d == Duration{} }

// String formats d as ParseDuration reads it, leaving out zero parts;
// the zero Duration is "0h".
func (d Duration) String() string {
	var b strings.Builder
	for _, part := range []struct {
		n    int
		unit string
	}{{d.Years, "y"}, {d.Months, "m"}, {d.Days, "d"}, {d.Hours, "h"}} {
		if part.n != 0 {
			b.WriteString(strconv.Itoa(part.n) + part.unit)
		}
	}
	if b.Len() == 0 {
		return "0h"
	}
	return b.String()
}

// before returns the instant d before t, years and months first, as
// restic computes the --keep-within cut-off.
func (d Duration) before(t time.Time) time.Time {
	return t.AddDate(-d.Years, -d.Months, -d.Days).Add(-time.Duration(d.Hours) * time.Hour)
}

const durationForm = "write a number before each of y (years), m (months), d (days), h (hours), in that order, like 1y5m7d2h"

// ParseDuration reads restic's --keep-within syntax: numbers followed by
// y (years), m (months), d (days) or h (hours), each unit at most once
// and in that order, such as "1y5m7d2h", "2d" or "36h". "m" is months, not
// minutes, so Go durations like "90m" mean something else here and
// minutes and seconds are not accepted at all.
func ParseDuration(s string) (Duration, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "" {
		return Duration{}, errors.New("empty duration: " + durationForm)
	}
	var d Duration
	fields := []*int{&d.Years, &d.Months, &d.Days, &d.Hours}
	next := 0 // index in "ymdh" of the first unit still allowed
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 {
			return Duration{}, fmt.Errorf("duration %q: expected a number at %q: %s", in, s, durationForm)
		}
		if i == len(s) {
			return Duration{}, fmt.Errorf("duration %q: number %s has no unit: %s", in, s, durationForm)
		}
		n, err := strconv.Atoi(s[:i])
		if err != nil {
			return Duration{}, fmt.Errorf("duration %q: number %s is too large: %s", in, s[:i], durationForm)
		}
		u := strings.IndexByte("ymdh", s[i])
		switch {
		case u < 0:
			return Duration{}, fmt.Errorf("duration %q: unknown unit %q: %s", in, s[i:i+1], durationForm)
		case u < next:
			return Duration{}, fmt.Errorf("duration %q: unit %q repeated or out of order: %s", in, s[i:i+1], durationForm)
		}
		*fields[u] = n
		next = u + 1
		s = s[i+1:]
	}
	return d, nil
}

// GroupBy says which snapshot fields split snapshots into groups that a
// policy is applied to separately. The zero GroupBy puts every snapshot
// in one group.
type GroupBy struct {
	Host, Paths, Tags bool
}

// ParseGroupBy reads a comma-separated list of host, paths and tags
// (restic's --group-by; its singular and plural spellings both work).
// "" means no grouping; restic's default is "host,paths".
func ParseGroupBy(s string) (GroupBy, error) {
	var g GroupBy
	for _, word := range strings.Split(s, ",") {
		switch strings.TrimSpace(word) {
		case "host", "hosts":
			g.Host = true
		case "path", "paths":
			g.Paths = true
		case "tag", "tags":
			g.Tags = true
		case "":
			// Restic accepts empty items, so "host," and "" are valid.
		default:
			return GroupBy{}, fmt.Errorf("cannot group snapshots by %q: use a comma-separated list of host, paths and tags, or \"\" for no grouping", strings.TrimSpace(word))
		}
	}
	return g, nil
}

// String formats g as ParseGroupBy reads it, such as "host,paths"; no
// grouping is "".
func (g GroupBy) String() string {
	var parts []string
	if g.Host {
		parts = append(parts, "host")
	}
	if g.Paths {
		parts = append(parts, "paths")
	}
	if g.Tags {
		parts = append(parts, "tags")
	}
	return strings.Join(parts, ",")
}

// GroupKey is what the snapshots of one group share. Fields not grouped
// by are empty; Paths and Tags are sorted and free of duplicates.
type GroupKey struct {
	Host  string   `json:"host"`
	Paths []string `json:"paths"`
	Tags  []string `json:"tags"`
}

// String is the group header restic prints, without "snapshots for (...)":
// for example "host [pc1], tags [a, b], paths [/home/a]". Empty fields are
// left out, so the key of no grouping is "".
func (k GroupKey) String() string {
	var parts []string
	if k.Host != "" {
		parts = append(parts, "host ["+k.Host+"]")
	}
	if len(k.Tags) > 0 {
		parts = append(parts, "tags ["+strings.Join(k.Tags, ", ")+"]")
	}
	if len(k.Paths) > 0 {
		parts = append(parts, "paths ["+strings.Join(k.Paths, ", ")+"]")
	}
	return strings.Join(parts, ", ")
}

func (k GroupKey) compare(o GroupKey) int {
	return cmp.Or(strings.Compare(k.Host, o.Host),
		slices.Compare(k.Paths, o.Paths), slices.Compare(k.Tags, o.Tags))
}

// SnapshotGroup is the snapshots sharing one key, in the order they were
// given to GroupSnapshots.
type SnapshotGroup struct {
	Key       GroupKey
	Snapshots []*Snapshot
}

// GroupSnapshots splits list by the fields by names. Paths and tags are
// compared as sets, so their order in a snapshot does not matter. Groups
// come sorted by host, then paths, then tags, so output does not change
// from run to run. The snapshots themselves are not modified.
func GroupSnapshots(list []*Snapshot, by GroupBy) []SnapshotGroup {
	var groups []SnapshotGroup
	for _, sn := range list {
		var k GroupKey
		if by.Host {
			k.Host = sn.Host
		}
		if by.Paths {
			k.Paths = sortedSet(sn.Paths)
		}
		if by.Tags {
			k.Tags = sortedSet(sn.Tags)
		}
		i, found := slices.BinarySearchFunc(groups, k, func(g SnapshotGroup, k GroupKey) int {
			return g.Key.compare(k)
		})
		if !found {
			groups = slices.Insert(groups, i, SnapshotGroup{Key: k})
		}
		groups[i].Snapshots = append(groups[i].Snapshots, sn)
	}
	return groups
}

// sortedSet returns a sorted copy of l without duplicates, nil if empty,
// so that a missing and an empty list fall in the same group.
func sortedSet(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return slices.Compact(s)
}
