package local

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		// A directory that does not exist yet, as a user would usually give.
		return open(t, filepath.Join(t.TempDir(), "repo"))
	})
}

// open returns the store for location as a *Store.
func open(t *testing.T, location string) *Store {
	t.Helper()
	st, err := Open(context.Background(), location)
	if err != nil {
		t.Fatalf("Open(%q): %v", location, err)
	}
	return st.(*Store)
}

// created returns a store created in a new directory.
func created(t *testing.T) *Store {
	t.Helper()
	st := open(t, filepath.Join(t.TempDir(), "repo"))
	if err := st.Create(context.Background(), []byte("config")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return st
}

func TestOpenLocation(t *testing.T) {
	base := t.TempDir()
	t.Chdir(base)
	tests := []struct {
		location string
		want     string // the store's directory; empty when Open must fail
	}{
		{location: "/srv/backup", want: "/srv/backup"},
		{location: "/srv/backup/../other/", want: "/srv/other"},
		{location: "fs:///srv/backup", want: "/srv/backup"},
		{location: "FS:///srv/backup", want: "/srv/backup"},
		{location: "rel/repo", want: filepath.Join(base, "rel/repo")},
		{location: "fs://rel/repo", want: filepath.Join(base, "rel/repo")},
		{location: "odd/a://b", want: filepath.Join(base, "odd/a:/b")},
		{location: ""},
		{location: "fs://"},
		{location: "oci://registry.example/repo"},
	}
	for _, tt := range tests {
		t.Run(tt.location, func(t *testing.T) {
			st, err := Open(context.Background(), tt.location)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("Open(%q) = %s, want error", tt.location, st.(*Store).dir)
				}
				// The location is at fault: the CLI exits with its usage code.
				if !errors.Is(err, storage.ErrBadLocation) {
					t.Errorf("Open(%q): %v, not a storage.ErrBadLocation", tt.location, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.location, err)
			}
			s := st.(*Store)
			if s.LocalPath() != tt.want || s.Location() != tt.want {
				t.Fatalf("Open(%q): LocalPath %q, Location %q; want %q", tt.location, s.LocalPath(), s.Location(), tt.want)
			}
			if got := s.Describe(context.Background()); got["type"] != "local directory" || got["path"] != tt.want {
				t.Fatalf("Describe() = %v", got)
			}
		})
	}
}

func TestCreateNonEmpty(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "photo.jpg"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := open(t, dir).Create(context.Background(), []byte("config"))
	if !errors.Is(err, storage.ErrExists) {
		t.Fatalf("Create in a non-empty directory = %v, want ErrExists", err)
	}
	if want := dir + " already exists and is not empty: choose an empty or new directory"; err.Error() != want {
		t.Errorf("Create error = %q, want %q", err, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "config")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused Create wrote a config (stat: %v)", err)
	}
}

func TestCreateOnFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := open(t, file).Create(context.Background(), []byte("config"))
	if !errors.Is(err, storage.ErrExists) || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("Create on a file = %v, want ErrExists saying it is not a directory", err)
	}
}

func TestCreateExistingEmpty(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir)
	if err := st.Create(context.Background(), []byte("config")); err != nil {
		t.Fatalf("Create in an empty directory: %v", err)
	}
	if got, err := st.Open(context.Background()); err != nil || string(got) != "config" {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestCreateMakesParents(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "a", "b", "repo")
	if err := open(t, dir).Create(context.Background(), []byte("config")); err != nil {
		t.Fatalf("Create with missing parents: %v", err)
	}
	for _, d := range []string{filepath.Join(base, "a"), filepath.Join(base, "a", "b"), dir} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s has mode %v, want 0700", d, fi.Mode().Perm())
		}
	}
}

func TestOpenMessages(t *testing.T) {
	base := t.TempDir()
	missing := filepath.Join(base, "missing")
	empty := filepath.Join(base, "empty")
	notRepo := filepath.Join(base, "photos")
	file := filepath.Join(notRepo, "a.jpg")
	for _, d := range []string{empty, notRepo} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(file, []byte("jpeg"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Only where Create would succeed may the caller suggest it.
	tests := []struct {
		dir, want    string
		notCreatable bool
	}{
		{missing, "directory " + missing + " does not exist", false},
		{empty, empty + " is not a coffer repository (no config file)", false},
		{notRepo, notRepo + " is not a coffer repository (no config file) and holds other files: give the directory a repository is in, or a new or empty one", true},
		{file, file + " is not a directory: give the directory a repository is in, or a new one", true},
	}
	for _, tt := range tests {
		_, err := open(t, tt.dir).Open(context.Background())
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Open(%s) = %v, want ErrNotFound", tt.dir, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Open(%s) = %q, want it to say %q", tt.dir, err, tt.want)
		}
		if errors.Is(err, storage.ErrNotCreatable) != tt.notCreatable {
			t.Errorf("Open(%s): matches ErrNotCreatable %v, want %v", tt.dir, !tt.notCreatable, tt.notCreatable)
		}
		if tt.notCreatable {
			if err := open(t, tt.dir).Create(context.Background(), []byte("config")); err == nil {
				t.Errorf("Create(%s) succeeded where Open said no repository can be made", tt.dir)
			}
		}
	}
}

func TestLayout(t *testing.T) {
	st := created(t)
	ctx := context.Background()
	name := "abcdef0123"
	want := map[storage.Kind]string{
		storage.KindPack:      "packs/ab/abcdef0123",
		storage.KindIndex:     "index/abcdef0123",
		storage.KindSnapshot:  "snapshots/abcdef0123",
		storage.KindKey:       "keys/abcdef0123",
		storage.KindLock:      "locks/abcdef0123",
		storage.KindPlan:      "plans/abcdef0123",
		storage.KindForgotten: "forgotten/abcdef0123",
	}
	for _, kind := range storage.Kinds {
		if err := st.Put(ctx, kind, name, storage.BytesBody([]byte("data"))); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(st.dir, want[kind]))
		if err != nil || string(got) != "data" {
			t.Errorf("%s: reading %s = %q, %v; want %q", kind, want[kind], got, err, "data")
		}
	}
	if got, err := os.ReadFile(filepath.Join(st.dir, "config")); err != nil || string(got) != "config" {
		t.Errorf("config file = %q, %v", got, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(st.dir, "tmp")); len(entries) != 0 {
		t.Errorf("tmp/ holds %d files after successful writes, want none", len(entries))
	}
}

func TestFileModes(t *testing.T) {
	st := created(t)
	ctx := context.Background()
	for _, kind := range storage.Kinds {
		if err := st.Put(ctx, kind, "0123", storage.BytesBody([]byte("data"))); err != nil {
			t.Fatal(err)
		}
	}
	err := filepath.WalkDir(st.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStrayFiles checks that files coffer did not commit, such as
// leftovers of a crashed Put or files a user dropped in, stay out of
// listings, and that Open cleans up only old leftovers.
func TestStrayFiles(t *testing.T) {
	st := created(t)
	ctx := context.Background()
	if err := st.Put(ctx, storage.KindPack, "abcd", storage.BytesBody([]byte("pack"))); err != nil {
		t.Fatal(err)
	}
	write := func(rel string) string {
		t.Helper()
		path := filepath.Join(st.dir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("stray"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	stale := write("tmp/abcdef-123456")
	fresh := write("tmp/abcdef-654321")
	write("packs/ab/.DS_Store")
	write("packs/ab/abcd.tmp")
	write("packs/cd/abce")  // valid name, wrong shard
	write("packs/abc/abcf") // not a shard
	write("packs/efgh")     // pack outside any shard
	write("index/README")
	if err := os.Mkdir(filepath.Join(st.dir, "index", "0123"), 0o700); err != nil {
		t.Fatal(err)
	}

	want := map[storage.Kind][]string{storage.KindPack: {"abcd"}}
	for _, kind := range storage.Kinds {
		var got []string
		err := st.List(ctx, kind, func(name string, size int64) error {
			got = append(got, name)
			return nil
		})
		if err != nil {
			t.Fatalf("List %s: %v", kind, err)
		}
		if !slices.Equal(got, want[kind]) {
			t.Errorf("List %s = %q, want %q", kind, got, want[kind])
		}
	}

	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open kept a two-hour-old tmp file (stat: %v)", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("Open removed a fresh tmp file, which may belong to a running Put: %v", err)
	}
}

func TestFailedPutLeavesNoTmp(t *testing.T) {
	st := created(t)
	err := st.Put(context.Background(), storage.KindPack, "abcd", storage.NewBody(strings.NewReader("short"), 100))
	if err == nil {
		t.Fatal("Put from a short body succeeded")
	}
	if entries, _ := os.ReadDir(filepath.Join(st.dir, "tmp")); len(entries) != 0 {
		t.Errorf("tmp/ holds %d files after a failed Put, want none", len(entries))
	}
}

func TestPutSameNameOtherSize(t *testing.T) {
	st := created(t)
	ctx := context.Background()
	if err := st.Put(ctx, storage.KindIndex, "abcd", storage.BytesBody([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	err := st.Put(ctx, storage.KindIndex, "abcd", storage.BytesBody([]byte("xy")))
	if !errors.Is(err, storage.ErrExists) {
		t.Fatalf("Put of an existing index with another size = %v, want ErrExists", err)
	}
}

// TestListVanishedRepository checks that a repository whose directory
// disappeared (an unmounted disk) does not list as empty.
func TestListVanishedRepository(t *testing.T) {
	st := created(t)
	if err := os.RemoveAll(st.dir); err != nil {
		t.Fatal(err)
	}
	for _, kind := range storage.Kinds {
		err := st.List(context.Background(), kind, func(string, int64) error { return nil })
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("List %s of a vanished repository = %v, want ErrNotFound", kind, err)
		}
	}
}

// TestRecreateKindDir checks that Put recovers from a kind directory
// removed by hand, as happens when a user empties locks/.
func TestRecreateKindDir(t *testing.T) {
	st := created(t)
	ctx := context.Background()
	for _, sub := range []string{"locks", "packs"} {
		if err := os.RemoveAll(filepath.Join(st.dir, sub)); err != nil {
			t.Fatal(err)
		}
	}
	for _, kind := range []storage.Kind{storage.KindLock, storage.KindPack} {
		if err := st.Put(ctx, kind, "abcd", storage.BytesBody([]byte("x"))); err != nil {
			t.Errorf("Put %s after its directory was removed: %v", kind, err)
		}
	}
}

// TestPutBeforeCreate checks that Put does not scatter directories into a
// location that holds no repository.
func TestPutBeforeCreate(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir)
	if err := st.Put(context.Background(), storage.KindIndex, "abcd", storage.BytesBody([]byte("x"))); err == nil {
		t.Fatal("Put before Create succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("Put before Create left %d entries in %s", len(entries), dir)
	}
}
