//go:build linux

package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage"
)

// restore -ignore-errors after a pack is deleted: every other file is
// restored as it was, the lost ones (those check names) are listed on
// stderr and left out, and the exit code is 3.
func TestRestoreIgnoreErrors(t *testing.T) {
	h := newHarness(t)
	h.mustAt("create", "-pack-size", "1") // a pack holds a file or two
	src := filepath.Join(t.TempDir(), "src")
	for i := range 8 {
		p := filepath.Join(src, fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, testutil.RandomBytes(int64(i), 400<<10), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "small"), []byte("small"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := h.backup(src)
	// A pack of file contents (tree packs are small): a lost tree loses
	// a directory, which is another case.
	damage(t, h, storage.KindPack, func(names []string, sizes map[string]int64) []string {
		for _, n := range names {
			if sizes[n] > 256<<10 {
				return []string{n}
			}
		}
		t.Fatal("no data pack")
		return nil
	})
	var affected []string
	for _, m := range regexp.MustCompile(`(?m)^affected: snapshot [0-9a-f]{8} (\S+) `).FindAllStringSubmatch(h.at("check").stdout, -1) {
		affected = append(affected, strings.TrimPrefix(m[1], src+"/"))
	}
	if len(affected) == 0 {
		t.Fatal("check names no affected file")
	}

	dst := t.TempDir()
	wantOneLineError(t, h.at("restore", id, "-to", t.TempDir()), ExitCorrupt)
	r := h.at("restore", id, "-to", dst, "-ignore-errors")
	if r.code != ExitPartial {
		t.Fatalf("restore -ignore-errors: exit %d, want %d; stderr:\n%s", r.code, ExitPartial, r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	var lost []string
	for _, l := range lines[:len(lines)-1] {
		m := regexp.MustCompile(`^warning: (\S+): not restored: `).FindStringSubmatch(l)
		if m == nil {
			t.Errorf("stderr line %q is not a file not restored", l)
			continue
		}
		lost = append(lost, strings.TrimPrefix(m[1], dst+"/"))
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, "restore is partial") {
		t.Errorf("last stderr line %q does not say the restore is partial", last)
	}
	slices.Sort(lost)
	slices.Sort(affected)
	if !slices.Equal(lost, affected) {
		t.Errorf("restore listed %q as not restored, check names %q", lost, affected)
	}
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		got, rerr := os.ReadFile(filepath.Join(dst, rel))
		if slices.Contains(lost, rel) {
			if rerr == nil {
				t.Errorf("%s was not restored but is in the target", rel)
			}
			return nil
		}
		want, _ := os.ReadFile(p)
		if rerr != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs from the source after restore -ignore-errors (%v)", rel, rerr)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
