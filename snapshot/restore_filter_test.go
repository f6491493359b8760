//go:build linux

package snapshot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage/mem"
)

// TestRestoreFilters restores a tree with -exclude and -include patterns
// and compares what lands in the target, entry by entry and byte by byte,
// with what the patterns say.
func TestRestoreFilters(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	files := []string{
		"README.md", "main.go", "main_test.go",
		"docs/guide.md", "docs/img/logo.png", "docs/img/notes.md",
		"src/a/x.go", "src/a/x.log", "src/b/y.go", "src/b/deep/z.log",
		"build/out.bin", "build/sub/more.bin",
		"empty/",
	}
	for _, f := range files {
		p := filepath.Join(src, f)
		if f[len(f)-1] == '/' {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("content of "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st := mem.New()
	sn := backup(t, newRepo(t, st), src, BackupOptions{})
	r := reopen(t, st)

	cases := []struct {
		name               string
		path               string
		excludes, includes []string
		want               []string // directories end in "/"
	}{
		{"exclude dir and glob", "", []string{"build/", "*.log"}, nil, []string{
			"README.md", "docs/", "docs/guide.md", "docs/img/", "docs/img/logo.png", "docs/img/notes.md",
			"empty/", "main.go", "main_test.go",
			"src/", "src/a/", "src/a/x.go", "src/b/", "src/b/deep/", "src/b/y.go",
		}},
		{"exclude anchored", "", []string{"/docs/img", "src/b"}, nil, []string{
			"README.md", "build/", "build/out.bin", "build/sub/", "build/sub/more.bin",
			"docs/", "docs/guide.md", "empty/", "main.go", "main_test.go",
			"src/", "src/a/", "src/a/x.go", "src/a/x.log",
		}},
		{"include glob", "", nil, []string{"*.md"}, []string{
			"README.md", "docs/", "docs/guide.md", "docs/img/", "docs/img/notes.md",
		}},
		{"include dir", "", nil, []string{"src/b"}, []string{
			"src/", "src/b/", "src/b/deep/", "src/b/deep/z.log", "src/b/y.go",
		}},
		{"include and exclude", "", []string{"*_test.go", "deep/"}, []string{"*.go"}, []string{
			"main.go", "src/", "src/a/", "src/a/x.go", "src/b/", "src/b/y.go",
		}},
		{"include empty dir", "", nil, []string{"empty/"}, []string{"empty/"}},
		{"sub path", "src", []string{"a"}, []string{"*.log"}, []string{"b/", "b/deep/", "b/deep/z.log"}},
		{"include nothing", "", nil, []string{"nope"}, nil},
	}
	for _, c := range cases {
		for _, batch := range []int{0, 1} {
			t.Run(fmt.Sprintf("%s/batch %d", c.name, batch), func(t *testing.T) {
				dst := t.TempDir()
				_, err := Restore(t.Context(), r, sn, c.path, RestoreOptions{Target: dst, Excludes: c.excludes, Includes: c.includes, batch: batch})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				err = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
					if err != nil || p == dst {
						return err
					}
					rel, _ := filepath.Rel(dst, p)
					if d.IsDir() {
						got = append(got, filepath.ToSlash(rel)+"/")
						return nil
					}
					got = append(got, filepath.ToSlash(rel))
					b, err := os.ReadFile(p)
					if err != nil {
						return err
					}
					orig := filepath.ToSlash(filepath.Join(c.path, rel))
					if string(b) != "content of "+orig {
						t.Errorf("%s holds %q", rel, b)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				slices.Sort(got)
				want := slices.Clone(c.want)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("restored\n  %q\nwant\n  %q", got, want)
				}
			})
		}
	}
}

// With IgnoreErrors, a hard-linked file whose data is damaged fails with
// every one of its names, in its batch and in later ones, and nothing
// else is lost: no name is left holding zeros, no link to a removed file
// stops the restore.
func TestRestoreIgnoreErrorsHardLinks(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a", "x"), testutil.RandomBytes(3, 5000), 0o644)
	writeFile(t, filepath.Join(src, "m", "ok.txt"), []byte("fine"), 0o644)
	if err := os.MkdirAll(filepath.Join(src, "z"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "a", "x"), filepath.Join(src, "z", "y")); err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(t.TempDir(), "repo")
	st := newFSStore(t, repoDir)
	sn := backup(t, newRepo(t, st), src, BackupOptions{})
	r := reopen(t, st)
	x := listSnapshot(t, r, sn)["a/x"]
	loc, ok := r.Index().Lookup(x.Content[0].ID)
	if !ok {
		t.Fatal("a/x's blob is not indexed")
	}
	flipByte(t, packPath(repoDir, loc.Pack), int64(loc.Offset)+int64(loc.Length)/2)
	r = reopen(t, st)

	for _, batch := range []int{0, 1} {
		t.Run(fmt.Sprintf("batch %d", batch), func(t *testing.T) {
			dst := t.TempDir()
			rec := &progressRecorder{}
			sum, err := Restore(t.Context(), r, sn, "", RestoreOptions{Target: dst, IgnoreErrors: true, Progress: rec, batch: batch})
			if err != nil {
				t.Fatalf("restore -ignore-errors: %v", err)
			}
			if sum.Failed != 2 || sum.Files != 1 {
				t.Errorf("summary %+v: want 2 failed, 1 file", sum)
			}
			for _, p := range []string{"a/x", "z/y"} {
				if _, err := os.Lstat(filepath.Join(dst, p)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s: %v, want it left out", p, err)
				}
			}
			if b, err := os.ReadFile(filepath.Join(dst, "m", "ok.txt")); err != nil || string(b) != "fine" {
				t.Errorf("m/ok.txt: %q, %v", b, err)
			}
			failed := map[string]bool{}
			for _, w := range rec.warnings() {
				failed[filepath.ToSlash(strings.TrimPrefix(w.path, dst+string(filepath.Separator)))] = true
			}
			if !failed["a/x"] || !failed["z/y"] {
				t.Errorf("warnings name %v, want a/x and z/y", failed)
			}
		})
	}
}

// totalHook is a RestoreProgress that runs a function when the survey
// has ended, before anything is written.
type totalHook struct {
	progressRecorder
	fn func()
}

func (h *totalHook) Total(files, bytes int64) {
	h.progressRecorder.Total(files, bytes)
	h.fn()
}

// A file that appears in the target after the survey found the way clear
// is not written into: the restore stops with ErrTargetExists, in a later
// batch too.
func TestRestoreFileAppearsAfterSurvey(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a.txt"), []byte("from the snapshot"), 0o644)
	writeFile(t, filepath.Join(src, "b.txt"), []byte("from the snapshot too"), 0o644)
	st := mem.New()
	sn := backup(t, newRepo(t, st), src, BackupOptions{})
	r := reopen(t, st)
	for _, batch := range []int{0, 1} {
		t.Run(fmt.Sprintf("batch %d", batch), func(t *testing.T) {
			dst := t.TempDir() // exists: the survey looks in it
			intruder := filepath.Join(dst, "b.txt")
			hook := &totalHook{fn: func() {
				if err := os.WriteFile(intruder, []byte("the user's"), 0o644); err != nil {
					t.Error(err)
				}
			}}
			_, err := Restore(t.Context(), r, sn, "", RestoreOptions{Target: dst, Progress: hook, batch: batch})
			if !errors.Is(err, ErrTargetExists) {
				t.Fatalf("restore: %v, want ErrTargetExists", err)
			}
			if b, _ := os.ReadFile(intruder); string(b) != "the user's" {
				t.Errorf("the file that appeared holds %q", b)
			}
		})
	}
}
