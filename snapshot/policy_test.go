package snapshot

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/repo"
)

// policyID gives snapshot n a distinct id whose first byte is n, so that
// ids sort in index order and ties in time resolve predictably.
func policyID(n int) repo.ID {
	id := repo.ID(sha256.Sum256(fmt.Appendf(nil, "snapshot %d", n)))
	id[0] = byte(n)
	return id
}

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

// policySnapshots is two years of irregular backups of one host, oldest
// first; index i has id policyID(i). The ISO week and weekday matter to
// several cases and are noted.
func policySnapshots() []*Snapshot {
	rows := []struct {
		when string
		tags []string
	}{
		0:  {"2023-01-01 10:00", []string{"monthly"}},             // Sun, ISO 2022-W52
		1:  {"2023-01-15 09:30", nil},                             // 2023-W02
		2:  {"2023-02-03 22:15", nil},                             // W05
		3:  {"2023-03-20 08:00", []string{"important"}},           // W12
		4:  {"2023-05-11 13:45", nil},                             // W19
		5:  {"2023-07-04 00:10", []string{"manual", "important"}}, // W27
		6:  {"2023-09-30 23:59", nil},                             // Sat, W39
		7:  {"2023-10-01 00:01", nil},                             // Sun, W39: same week as 6, next month
		8:  {"2023-12-31 18:00", nil},                             // Sun, 2023-W52
		9:  {"2024-01-01 06:00", nil},                             // Mon, 2024-W01
		10: {"2024-02-29 12:00", nil},                             // W09
		11: {"2024-03-31 01:30", nil},                             // W13
		12: {"2024-05-15 14:00", []string{"manual"}},              // W20
		13: {"2024-08-20 10:00", nil},                             // W34
		14: {"2024-10-31 20:00", nil},                             // W44
		15: {"2024-11-29 07:00", nil},                             // W48
		16: {"2024-12-16 09:00", nil},                             // W51
		17: {"2024-12-23 09:00", nil},                             // W52
		18: {"2024-12-28 15:00", nil},                             // Sat, 2024-W52
		19: {"2024-12-30 03:00", nil},                             // Mon, ISO 2025-W01
		20: {"2024-12-31 23:30", nil},                             // Tue, ISO 2025-W01
		21: {"2025-01-02 08:00", nil},                             // 2025-W01
		22: {"2025-01-05 10:00", nil},                             // Sun, 2025-W01
		23: {"2025-01-06 10:00", nil},                             // Mon, 2025-W02
		24: {"2025-01-06 10:45", nil},                             // same hour as 23
		25: {"2025-01-06 11:05", nil},                             // same day as 23 and 24
		26: {"2025-01-07 09:00", []string{"manual"}},              // same instant as 27
		27: {"2025-01-07 09:00", nil},                             // same instant as 26
		28: {"2025-01-07 21:15", nil},
		29: {"2025-01-08 02:00", []string{"important"}}, // Wed, the newest
	}
	sns := make([]*Snapshot, len(rows))
	for i, r := range rows {
		sns[i] = &Snapshot{
			Time: at(r.when), Host: "pc1", Paths: []string{"/home/a"},
			Tags: r.tags, ID: policyID(i),
		}
	}
	return sns
}

// indexes returns the policySnapshots indexes of sns, sorted.
func indexes(t *testing.T, sns []*Snapshot) []int {
	t.Helper()
	var out []int
	for _, sn := range sns {
		out = append(out, int(sn.ID[0]))
	}
	slices.Sort(out)
	return out
}

func span(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func without(all []int, drop ...int) []int {
	return slices.DeleteFunc(slices.Clone(all), func(i int) bool { return slices.Contains(drop, i) })
}

func TestApplyPolicy(t *testing.T) {
	all := span(0, 29)
	for _, tc := range []struct {
		name    string
		policy  ExpirePolicy
		keep    []int
		reasons map[int][]string // exact Matches of some kept snapshots
	}{
		{
			// 26 and 27 share an instant; 26 has the lower id, so it
			// sorts first and takes the third place.
			name:   "last 3",
			policy: ExpirePolicy{Last: 3},
			keep:   []int{26, 28, 29},
			reasons: map[int][]string{
				29: {"last snapshot"}, 26: {"last snapshot"},
			},
		},
		{
			name:   "last 4 keeps both snapshots of one instant",
			policy: ExpirePolicy{Last: 4},
			keep:   []int{26, 27, 28, 29},
		},
		{
			// Hours, newest first: 08 02h, 07 21h, 07 09h (26 and 27),
			// 06 11h, 06 10h (24 newer than 23).
			name:    "hourly 5",
			policy:  ExpirePolicy{Hourly: 5},
			keep:    []int{24, 25, 26, 28, 29},
			reasons: map[int][]string{24: {"hourly snapshot"}},
		},
		{
			name:    "daily 4",
			policy:  ExpirePolicy{Daily: 4},
			keep:    []int{22, 25, 28, 29},
			reasons: map[int][]string{22: {"daily snapshot"}},
		},
		{
			name:    "weekly 2",
			policy:  ExpirePolicy{Weekly: 2},
			keep:    []int{22, 29},
			reasons: map[int][]string{29: {"weekly snapshot"}, 22: {"weekly snapshot"}},
		},
		{
			// 2024-12-30 and 31 are in ISO week 2025-W01 with 22, so
			// the third week kept is 2024-W52, whose newest is 18.
			name:   "weekly 4 across the ISO year boundary",
			policy: ExpirePolicy{Weekly: 4},
			keep:   []int{16, 18, 22, 29},
		},
		{
			// One per ISO week: 6 and 7 share 2023-W39, 17 and 18
			// share 2024-W52, 19-22 share 2025-W01, 23-29 2025-W02.
			name:   "weekly unlimited",
			policy: ExpirePolicy{Weekly: -1},
			keep:   without(all, 6, 17, 19, 20, 21, 23, 24, 25, 26, 27, 28),
		},
		{
			name:   "monthly 6",
			policy: ExpirePolicy{Monthly: 6},
			keep:   []int{12, 13, 14, 15, 20, 29},
			reasons: map[int][]string{
				20: {"monthly snapshot"}, 12: {"monthly snapshot"},
			},
		},
		{
			name:    "yearly 2",
			policy:  ExpirePolicy{Yearly: 2},
			keep:    []int{20, 29},
			reasons: map[int][]string{20: {"yearly snapshot"}},
		},
		{
			// Only three years exist, so counts are left when the
			// walk reaches the oldest snapshot, 0; restic keeps it
			// although 8 already stands for 2023.
			name:   "yearly 5 keeps the oldest snapshot",
			policy: ExpirePolicy{Yearly: 5},
			keep:   []int{0, 8, 20, 29},
			reasons: map[int][]string{
				8: {"yearly snapshot"}, 0: {"oldest yearly snapshot"},
			},
		},
		{
			// daily: 29, 28, 25. weekly: 29 (2025-W02), 22 (2025-W01,
			// which also holds 19-21), 18 (2024-W52). monthly: 29, 20,
			// 15, 14.
			name:   "mixed daily weekly monthly",
			policy: ExpirePolicy{Daily: 3, Weekly: 3, Monthly: 4},
			keep:   []int{14, 15, 18, 20, 22, 25, 28, 29},
			reasons: map[int][]string{
				29: {"daily snapshot", "weekly snapshot", "monthly snapshot"},
				25: {"daily snapshot"},
				22: {"weekly snapshot"},
				20: {"monthly snapshot"},
				18: {"weekly snapshot"},
			},
		},
		{
			// Every day keeps its newest snapshot; the older ones of
			// 2025-01-06 (23, 24) and 2025-01-07 (26, 27) go. 6 and 7
			// are two minutes apart but on different days.
			name:   "daily unlimited",
			policy: ExpirePolicy{Daily: -1},
			keep:   without(all, 23, 24, 26, 27),
			reasons: map[int][]string{
				0: {"daily snapshot"}, 6: {"daily snapshot"}, 7: {"daily snapshot"},
			},
		},
		{
			// Cut-off 2025-01-06 02:00.
			name:    "within 2d",
			policy:  ExpirePolicy{Within: Duration{Days: 2}},
			keep:    span(23, 29),
			reasons: map[int][]string{23: {"within 2d"}},
		},
		{
			// Cut-off 2025-01-07 09:00, the instant of 26 and 27: only
			// snapshots strictly after it are within.
			name:   "within 17h excludes the cut-off instant",
			policy: ExpirePolicy{Within: Duration{Hours: 17}},
			keep:   []int{28, 29},
		},
		{
			// Cut-off 2024-12-08 02:00.
			name:    "within 1m",
			policy:  ExpirePolicy{Within: Duration{Months: 1}},
			keep:    span(16, 29),
			reasons: map[int][]string{16: {"within 1m"}},
		},
		{
			// Cut-off 2023-11-08 02:00.
			name:    "within 1y2m",
			policy:  ExpirePolicy{Within: Duration{Years: 1, Months: 2}},
			keep:    span(8, 29),
			reasons: map[int][]string{8: {"within 1y2m"}},
		},
		{
			name:   "keep tag",
			policy: ExpirePolicy{Tags: [][]string{{"important"}}},
			keep:   []int{3, 5, 29},
			reasons: map[int][]string{
				5: {"has tags [important]"}, 29: {"has tags [important]"},
			},
		},
		{
			name:    "keep tags needing both of two",
			policy:  ExpirePolicy{Tags: [][]string{{"important", "manual"}}},
			keep:    []int{5},
			reasons: map[int][]string{5: {"has tags [important, manual]"}},
		},
		{
			name:   "keep tags from two lists",
			policy: ExpirePolicy{Tags: [][]string{{"important", "manual"}, {"monthly"}}},
			keep:   []int{0, 5},
			reasons: map[int][]string{
				0: {"has tags [monthly]"}, 5: {"has tags [important, manual]"},
			},
		},
		{
			name:   "keep tag empty keeps untagged snapshots",
			policy: ExpirePolicy{Tags: [][]string{{""}}},
			keep:   without(all, 0, 3, 5, 12, 26, 29),
		},
		{
			// Tags and within are checked before the counts, so their
			// reasons come first.
			name: "tags, within and last together",
			policy: ExpirePolicy{
				Last: 1, Within: Duration{Days: 2}, Tags: [][]string{{"manual"}},
			},
			keep: []int{5, 12, 23, 24, 25, 26, 27, 28, 29},
			reasons: map[int][]string{
				29: {"within 2d", "last snapshot"},
				26: {"has tags [manual]", "within 2d"},
				28: {"within 2d"},
				12: {"has tags [manual]"},
			},
		},
		{
			name:   "empty policy keeps nothing",
			policy: ExpirePolicy{},
			keep:   nil,
		},
		{
			name:    "last unlimited keeps everything",
			policy:  ExpirePolicy{Last: -1},
			keep:    all,
			reasons: map[int][]string{27: {"last snapshot"}, 0: {"last snapshot"}},
		},
		{
			// Thirty snapshots, a count of forty: the oldest is kept in
			// its own right, not by the oldest-snapshot rule.
			name:    "last beyond the list keeps everything",
			policy:  ExpirePolicy{Last: 40},
			keep:    all,
			reasons: map[int][]string{0: {"last snapshot"}},
		},
		{
			// Counts below -1 are ignored, as in restic; forget must
			// reject them before they get here.
			name:   "count below -1 is not a count",
			policy: ExpirePolicy{Daily: -2, Last: 1},
			keep:   []int{29},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			input := policySnapshots()
			// Pass them shuffled: ApplyPolicy must sort for itself.
			shuffled := slices.Clone(input)
			for i := range shuffled {
				j := (i*7 + 3) % len(shuffled)
				shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
			}
			before := slices.Clone(shuffled)
			keep, remove, reasons := ApplyPolicy(shuffled, tc.policy)

			if !slices.Equal(shuffled, before) {
				t.Errorf("ApplyPolicy reordered its input")
			}
			if got := indexes(t, keep); !slices.Equal(got, tc.keep) {
				t.Errorf("kept %v, want %v", got, tc.keep)
			}
			checkPartition(t, input, keep, remove, reasons)
			byIndex := map[int]KeepReason{}
			for _, r := range reasons {
				byIndex[int(r.Snapshot.ID[0])] = r
			}
			for i, want := range tc.reasons {
				if got := byIndex[i].Matches; !slices.Equal(got, want) {
					t.Errorf("snapshot %d kept for %q, want %q", i, got, want)
				}
			}
		})
	}
}

// checkPartition checks that keep and remove split input exactly, both
// newest first, and that reasons line up with keep.
func checkPartition(t *testing.T, input, keep, remove []*Snapshot, reasons []KeepReason) {
	t.Helper()
	seen := map[*Snapshot]string{}
	for _, sn := range keep {
		seen[sn] = "keep"
	}
	for _, sn := range remove {
		if seen[sn] != "" {
			t.Errorf("snapshot %s is both kept and removed", sn.ID.Short())
		}
		seen[sn] = "remove"
	}
	if len(keep)+len(remove) != len(input) || len(seen) != len(input) {
		t.Errorf("keep %d + remove %d snapshots, want the %d given, each once", len(keep), len(remove), len(input))
	}
	for _, sn := range input {
		if seen[sn] == "" {
			t.Errorf("snapshot %s neither kept nor removed", sn.ID.Short())
		}
	}
	for _, l := range [][]*Snapshot{keep, remove} {
		if !slices.IsSortedFunc(l, func(a, b *Snapshot) int { return b.Time.Compare(a.Time) }) {
			t.Errorf("result not newest first")
		}
	}
	if len(reasons) != len(keep) {
		t.Fatalf("%d reasons for %d kept snapshots", len(reasons), len(keep))
	}
	for i, r := range reasons {
		if r.Snapshot != keep[i] {
			t.Errorf("reasons[%d] is for %s, keep[%d] is %s", i, r.Snapshot.ID.Short(), i, keep[i].ID.Short())
		}
		if len(r.Matches) == 0 {
			t.Errorf("snapshot %s kept without a reason", r.Snapshot.ID.Short())
		}
	}
}

func TestApplyPolicyTies(t *testing.T) {
	// Three snapshots of one instant are three snapshots. Which one a
	// daily slot takes must not depend on the order they are passed in.
	when := at("2024-06-01 12:00")
	a := &Snapshot{Time: when, ID: policyID(1)}
	b := &Snapshot{Time: when, ID: policyID(2)}
	c := &Snapshot{Time: when, ID: policyID(3)}
	older := &Snapshot{Time: when.Add(-time.Hour), ID: policyID(4)}
	for _, order := range [][]*Snapshot{{a, b, c, older}, {older, c, b, a}, {b, older, a, c}} {
		keep, remove, _ := ApplyPolicy(order, ExpirePolicy{Last: 2})
		if !slices.Equal(keep, []*Snapshot{a, b}) || !slices.Equal(remove, []*Snapshot{c, older}) {
			t.Errorf("last 2 of %v: kept %v, removed %v; want ids 1 2 kept", indexes(t, order), indexes(t, keep), indexes(t, remove))
		}
		// The daily slot goes to a (lowest id); older is then kept as
		// the oldest snapshot since the count has one left.
		keep, _, reasons := ApplyPolicy(order, ExpirePolicy{Daily: 2})
		if !slices.Equal(keep, []*Snapshot{a, older}) {
			t.Errorf("daily 2 of %v: kept %v, want ids 1 4", indexes(t, order), indexes(t, keep))
		}
		if len(reasons) == 2 && !slices.Equal(reasons[1].Matches, []string{"oldest daily snapshot"}) {
			t.Errorf("oldest kept for %q", reasons[1].Matches)
		}
	}
}

func TestApplyPolicyCounters(t *testing.T) {
	keep, _, reasons := ApplyPolicy(policySnapshots(), ExpirePolicy{Daily: 4, Weekly: -1})
	if len(keep) == 0 {
		t.Fatal("nothing kept")
	}
	// 29 is first: one daily used, weekly unlimited stays -1.
	if got, want := reasons[0].Counters, (KeepCounters{Daily: 3, Weekly: -1}); got != want {
		t.Errorf("counters after the newest: %+v, want %+v", got, want)
	}
	last := reasons[len(reasons)-1]
	if got, want := last.Counters, (KeepCounters{Daily: 0, Weekly: -1}); got != want {
		t.Errorf("counters after the oldest: %+v, want %+v", got, want)
	}
}

func TestApplyPolicyFutureSnapshot(t *testing.T) {
	// A snapshot from a clock running two days ahead must not move the
	// Within window: it is measured from the newest snapshot in the past.
	now := time.Now()
	future := &Snapshot{Time: now.Add(48 * time.Hour), ID: policyID(1)}
	recent := &Snapshot{Time: now.Add(-time.Hour), ID: policyID(2)}
	day := &Snapshot{Time: now.Add(-30 * time.Hour), ID: policyID(3)}
	old := &Snapshot{Time: now.Add(-80 * time.Hour), ID: policyID(4)}
	keep, remove, _ := ApplyPolicy([]*Snapshot{old, day, recent, future}, ExpirePolicy{Within: Duration{Days: 2}})
	if !slices.Equal(keep, []*Snapshot{future, recent, day}) || !slices.Equal(remove, []*Snapshot{old}) {
		t.Errorf("kept %v, removed %v; want 1 2 3 kept", indexes(t, keep), indexes(t, remove))
	}
}

func TestApplyPolicyEmptyList(t *testing.T) {
	keep, remove, reasons := ApplyPolicy(nil, ExpirePolicy{Last: 1})
	if keep != nil || remove != nil || reasons != nil {
		t.Errorf("got %v %v %v from no snapshots", keep, remove, reasons)
	}
}

func TestExpirePolicyEmptyAndString(t *testing.T) {
	for _, tc := range []struct {
		p     ExpirePolicy
		empty bool
		want  string
	}{
		{ExpirePolicy{}, true, "remove"},
		{ExpirePolicy{Tags: [][]string{}}, true, "remove"},
		{ExpirePolicy{Last: 2, Daily: 7, Tags: [][]string{{"a", "b"}}, Within: Duration{Days: 3}}, false,
			"keep 2 latest, 7 daily snapshots and all snapshots with tags [[a, b]] and all snapshots within 3d of the newest"},
		{ExpirePolicy{Daily: -1, Monthly: 12}, false, "keep all daily, 12 monthly snapshots"},
		{ExpirePolicy{Hourly: 1, Weekly: 2, Yearly: 3}, false, "keep 1 hourly, 2 weekly, 3 yearly snapshots"},
		{ExpirePolicy{Tags: [][]string{{"a"}, {"b", "c"}}}, false, "keep all snapshots with tags [[a] [b, c]]"},
		{ExpirePolicy{Tags: [][]string{{""}}}, false, "keep all snapshots with tags [[]]"},
		{ExpirePolicy{Within: Duration{Years: 1, Hours: 2}}, false, "keep all snapshots within 1y2h of the newest"},
	} {
		if got := tc.p.Empty(); got != tc.empty {
			t.Errorf("%+v.Empty() = %v, want %v", tc.p, got, tc.empty)
		}
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%+v.String() =\n%q, want\n%q", tc.p, got, tc.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Duration
		str  string
	}{
		{"1y5m7d2h", Duration{Years: 1, Months: 5, Days: 7, Hours: 2}, "1y5m7d2h"},
		{"2d", Duration{Days: 2}, "2d"},
		{"36h", Duration{Hours: 36}, "36h"},
		{"1m", Duration{Months: 1}, "1m"},
		{"90m", Duration{Months: 90}, "90m"},
		{"1y2m", Duration{Years: 1, Months: 2}, "1y2m"},
		{"3y12h", Duration{Years: 3, Hours: 12}, "3y12h"},
		{" 3d\n", Duration{Days: 3}, "3d"},
		{"007d", Duration{Days: 7}, "7d"},
		{"0d", Duration{}, "0h"},
	} {
		got, err := ParseDuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseDuration(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if s := got.String(); s != tc.str {
			t.Errorf("ParseDuration(%q).String() = %q, want %q", tc.in, s, tc.str)
		}
	}
	for _, tc := range []struct{ in, problem string }{
		{"", "empty duration"},
		{"   ", "empty duration"},
		{"3", "no unit"},
		{"d", "expected a number"},
		{"3x", `unknown unit "x"`},
		{"3w", `unknown unit "w"`},
		{"90s", `unknown unit "s"`},
		{"1.5d", `unknown unit "."`},
		{"1d2y", `unit "y" repeated or out of order`},
		{"2d3d", `unit "d" repeated or out of order`},
		{"-1d", "expected a number"},
		{"1d 2h", "expected a number"},
		{"1h30m", `unit "m" repeated or out of order`},
		{"99999999999999999999d", "too large"},
	} {
		_, err := ParseDuration(tc.in)
		if err == nil {
			t.Errorf("ParseDuration(%q) succeeded", tc.in)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.problem) || !strings.Contains(msg, "like 1y5m7d2h") || strings.Contains(msg, "\n") {
			t.Errorf("ParseDuration(%q) error %q: want one line saying %q and the expected form", tc.in, msg, tc.problem)
		}
		if tc.in != "" && strings.TrimSpace(tc.in) != "" && !strings.Contains(msg, fmt.Sprintf("%q", tc.in)) {
			t.Errorf("ParseDuration(%q) error %q does not name the input", tc.in, msg)
		}
	}
}

func TestParseGroupBy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want GroupBy
		str  string
	}{
		{"host,paths", GroupBy{Host: true, Paths: true}, "host,paths"},
		{"host", GroupBy{Host: true}, "host"},
		{"paths", GroupBy{Paths: true}, "paths"},
		{"tags", GroupBy{Tags: true}, "tags"},
		{"", GroupBy{}, ""},
		{"tags,host", GroupBy{Host: true, Tags: true}, "host,tags"},
		{"hosts,path,tag", GroupBy{Host: true, Paths: true, Tags: true}, "host,paths,tags"},
		{"host, paths", GroupBy{Host: true, Paths: true}, "host,paths"},
		{"host,", GroupBy{Host: true}, "host"},
	} {
		got, err := ParseGroupBy(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseGroupBy(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if s := got.String(); s != tc.str {
			t.Errorf("ParseGroupBy(%q).String() = %q, want %q", tc.in, s, tc.str)
		}
		if again, err := ParseGroupBy(got.String()); err != nil || again != got {
			t.Errorf("%q does not parse back: %+v, %v", got.String(), again, err)
		}
	}
	for _, tc := range []struct{ in, bad string }{
		{"hostname", `"hostname"`},
		{"host,user", `"user"`},
		{"HOST", `"HOST"`},
		{"host paths", `"host paths"`},
	} {
		_, err := ParseGroupBy(tc.in)
		if err == nil {
			t.Errorf("ParseGroupBy(%q) succeeded", tc.in)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.bad) || !strings.Contains(msg, "host, paths and tags") {
			t.Errorf("ParseGroupBy(%q) error %q: want it to name %s and the choices", tc.in, msg, tc.bad)
		}
	}
}

func TestGroupSnapshots(t *testing.T) {
	mk := func(n int, host string, paths, tags []string) *Snapshot {
		return &Snapshot{Time: at("2024-01-01 00:00").Add(time.Duration(n) * time.Hour),
			Host: host, Paths: paths, Tags: tags, ID: policyID(n)}
	}
	s1 := mk(1, "pc2", []string{"/home/a"}, []string{"b", "a"})
	s2 := mk(2, "pc1", []string{"/home/b", "/home/a"}, nil)
	s3 := mk(3, "pc1", []string{"/home/a"}, []string{"a"})
	s4 := mk(4, "pc1", []string{"/home/a", "/home/b"}, []string{"a", "b"})
	s5 := mk(5, "pc10", []string{"/home/a"}, []string{})
	s6 := mk(6, "pc1", []string{"/home/a"}, []string{"a", "a"})
	list := []*Snapshot{s1, s2, s3, s4, s5, s6}

	type group struct {
		key string
		sns []*Snapshot
	}
	for _, tc := range []struct {
		by   string
		want []group
	}{
		{"host,paths", []group{
			{"host [pc1], paths [/home/a]", []*Snapshot{s3, s6}},
			{"host [pc1], paths [/home/a, /home/b]", []*Snapshot{s2, s4}},
			{"host [pc10], paths [/home/a]", []*Snapshot{s5}},
			{"host [pc2], paths [/home/a]", []*Snapshot{s1}},
		}},
		{"host", []group{
			{"host [pc1]", []*Snapshot{s2, s3, s4, s6}},
			{"host [pc10]", []*Snapshot{s5}},
			{"host [pc2]", []*Snapshot{s1}},
		}},
		{"paths", []group{
			{"paths [/home/a]", []*Snapshot{s1, s3, s5, s6}},
			{"paths [/home/a, /home/b]", []*Snapshot{s2, s4}},
		}},
		{"tags", []group{
			{"", []*Snapshot{s2, s5}}, // nil and empty tags are one group
			{"tags [a]", []*Snapshot{s3, s6}},
			{"tags [a, b]", []*Snapshot{s1, s4}},
		}},
		{"host,tags", []group{
			{"host [pc1]", []*Snapshot{s2}},
			{"host [pc1], tags [a]", []*Snapshot{s3, s6}},
			{"host [pc1], tags [a, b]", []*Snapshot{s4}},
			{"host [pc10]", []*Snapshot{s5}},
			{"host [pc2], tags [a, b]", []*Snapshot{s1}},
		}},
		{"", []group{
			{"", list},
		}},
	} {
		t.Run(tc.by, func(t *testing.T) {
			by, err := ParseGroupBy(tc.by)
			if err != nil {
				t.Fatal(err)
			}
			got := GroupSnapshots(list, by)
			var gotKeys, wantKeys []string
			for _, g := range got {
				gotKeys = append(gotKeys, g.Key.String())
			}
			for _, g := range tc.want {
				wantKeys = append(wantKeys, g.key)
			}
			if !slices.Equal(gotKeys, wantKeys) {
				t.Fatalf("groups %q, want %q", gotKeys, wantKeys)
			}
			for i, g := range got {
				if !slices.Equal(g.Snapshots, tc.want[i].sns) {
					t.Errorf("group %q holds %v, want %v", g.Key, indexes(t, g.Snapshots), indexes(t, tc.want[i].sns))
				}
			}
		})
	}
	// Grouping must not sort or dedupe the snapshots' own lists.
	if !slices.Equal(s2.Paths, []string{"/home/b", "/home/a"}) || !slices.Equal(s1.Tags, []string{"b", "a"}) || !slices.Equal(s6.Tags, []string{"a", "a"}) {
		t.Errorf("GroupSnapshots modified snapshots: %v %v %v", s2.Paths, s1.Tags, s6.Tags)
	}
	// The key carries the sorted sets themselves, not just their text.
	g := GroupSnapshots([]*Snapshot{s4}, GroupBy{Host: true, Paths: true, Tags: true})
	want := GroupKey{Host: "pc1", Paths: []string{"/home/a", "/home/b"}, Tags: []string{"a", "b"}}
	if len(g) != 1 || g[0].Key.Host != want.Host || !slices.Equal(g[0].Key.Paths, want.Paths) || !slices.Equal(g[0].Key.Tags, want.Tags) {
		t.Errorf("key %+v, want %+v", g, want)
	}
	if s := want.String(); s != "host [pc1], tags [a, b], paths [/home/a, /home/b]" {
		t.Errorf("key string %q", s)
	}
	if GroupSnapshots(nil, GroupBy{Host: true}) != nil {
		t.Errorf("groups from no snapshots")
	}
}
