//go:build unix

package repo

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKeyCache(t *testing.T) {
	ctx := context.Background()
	created, st := newTestRepo(t)
	dir := filepath.Join(t.TempDir(), "keys")
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	kc := &KeyCache{Dir: dir, MaxAge: 15 * time.Minute, Now: func() time.Time { return now }}

	asked := 0
	var warnings []string
	open := func(kc *KeyCache, pw string) (*Repository, error) {
		return Open(ctx, st, func() ([]byte, error) {
			asked++
			return []byte(pw), nil
		}, OpenOptions{KeyCache: kc, Warnf: func(f string, args ...any) { warnings = append(warnings, f) }})
	}
	mustOpen := func(t *testing.T, kc *KeyCache, wantAsked bool) {
		t.Helper()
		asked = 0
		r, err := open(kc, testPassphrase)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if r.Config().ID != created.Config().ID || r.BlobID(BlobData, []byte("x")) != created.BlobID(BlobData, []byte("x")) {
			t.Fatal("opened with other keys than the repository's")
		}
		if got := asked > 0; got != wantAsked {
			t.Fatalf("passphrase asked = %v, want %v (warnings %q)", got, wantAsked, warnings)
		}
	}
	entry := func() string {
		m, _ := filepath.Glob(filepath.Join(dir, "*.key"))
		if len(m) != 1 {
			t.Fatalf("key cache holds %d entries, want 1", len(m))
		}
		return m[0]
	}

	mustOpen(t, kc, true)  // first: asks and caches
	mustOpen(t, kc, false) // then: no passphrase, no key derivation
	if info, err := os.Stat(entry()); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("entry mode = %v, %v; want 0600", info.Mode(), err)
	}
	if info, err := os.Stat(dir); err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode = %v, %v; want 0700", info.Mode(), err)
	}
	// A wrong passphrase is not asked for while the key is cached.
	asked = 0
	if _, err := open(kc, "wrong"); err != nil || asked != 0 {
		t.Fatalf("open with a cached key = %v, asked %d", err, asked)
	}

	t.Run("expires", func(t *testing.T) {
		now = now.Add(16 * time.Minute)
		mustOpen(t, kc, true)
		mustOpen(t, kc, false) // a new entry from the new passphrase
	})
	t.Run("a shorter -key-cache bounds an older entry", func(t *testing.T) {
		now = now.Add(6 * time.Minute)
		short := *kc
		short.MaxAge = 5 * time.Minute
		mustOpen(t, &short, true)
	})
	t.Run("not extended by use", func(t *testing.T) {
		now = now.Add(time.Hour)
		mustOpen(t, kc, true) // written now
		for range 3 {
			now = now.Add(4 * time.Minute)
			mustOpen(t, kc, false)
		}
		now = now.Add(4 * time.Minute) // 16 minutes after the passphrase
		mustOpen(t, kc, true)
	})
	t.Run("open to others", func(t *testing.T) {
		if err := os.Chmod(entry(), 0o644); err != nil {
			t.Fatal(err)
		}
		warnings = nil
		mustOpen(t, kc, true)
		if len(warnings) == 0 {
			t.Error("no warning about an entry others can read")
		}
		os.Remove(entry())
		mustOpen(t, kc, true)
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		mustOpen(t, kc, true)
		os.Chmod(dir, 0o700)
	})
	t.Run("a link is not followed", func(t *testing.T) {
		mustOpen(t, kc, false)
		target := filepath.Join(t.TempDir(), "elsewhere")
		if err := os.Rename(entry(), target); err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dir, filepath.Base(kc.entryPath(mustSealedConfig(t, st))))
		if err := os.Symlink(target, name); err != nil {
			t.Fatal(err)
		}
		mustOpen(t, kc, true)
	})
	t.Run("other keys are not trusted", func(t *testing.T) {
		mustOpen(t, kc, false)
		b, err := os.ReadFile(entry())
		if err != nil {
			t.Fatal(err)
		}
		var e keyCacheEntry
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatal(err)
		}
		other, err := newMasterKeys()
		if err != nil {
			t.Fatal(err)
		}
		e.Keys = other
		b, _ = json.Marshal(e)
		if err := os.WriteFile(entry(), b, 0o600); err != nil {
			t.Fatal(err)
		}
		mustOpen(t, kc, true) // the config does not open with them
		mustOpen(t, kc, false)
	})
	t.Run("expired entries of other repositories go", func(t *testing.T) {
		stale := filepath.Join(dir, "0123.key")
		b, _ := json.Marshal(keyCacheEntry{Version: keyCacheVersion, Created: now.Add(-2 * time.Hour), Expires: now.Add(-time.Hour), Keys: &masterKeys{}})
		if err := os.WriteFile(stale, b, 0o600); err != nil {
			t.Fatal(err)
		}
		leftover := filepath.Join(dir, ".new-1")
		if err := os.WriteFile(leftover, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
		old := now.Add(-time.Hour)
		os.Chtimes(leftover, old, old)
		now = now.Add(time.Hour) // and this repository's entry expires too
		mustOpen(t, kc, true)    // which writes a new one
		for _, p := range []string{stale, leftover} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s is still there", filepath.Base(p))
			}
		}
	})
	t.Run("a removed key ends its sessions", func(t *testing.T) {
		r, err := open(nil, testPassphrase)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.ChangePassphrase(ctx, []byte("new passphrase"), TestKDF); err != nil {
			t.Fatal(err)
		}
		asked = 0
		if _, err := open(kc, testPassphrase); err == nil || asked != 1 {
			t.Fatalf("open after the passphrase changed = %v, asked %d; want the old passphrase refused", err, asked)
		}
		if _, err := open(kc, "new passphrase"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("forget follows no link", func(t *testing.T) {
		mustOpen(t, kc, false)
		elsewhere := t.TempDir()
		victim := filepath.Join(elsewhere, "precious.key")
		if err := os.WriteFile(victim, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		linked := &KeyCache{Dir: filepath.Join(t.TempDir(), "keys")}
		if err := os.Symlink(elsewhere, linked.Dir); err != nil {
			t.Fatal(err)
		}
		if n, err := linked.Forget(); err == nil || n != 0 {
			t.Errorf("Forget through a link: %d, %v; want an error", n, err)
		}
		if _, err := os.Stat(victim); err != nil {
			t.Errorf("Forget through a link removed %s: %v", victim, err)
		}
	})
	t.Run("forget", func(t *testing.T) {
		keys, err := kc.List()
		if err != nil || len(keys) != 1 || keys[0].Location != st.Location() {
			t.Fatalf("List = %+v, %v", keys, err)
		}
		n, err := kc.Forget()
		if err != nil || n != 1 {
			t.Fatalf("Forget = %d, %v", n, err)
		}
		if keys, _ := kc.List(); len(keys) != 0 {
			t.Fatalf("after Forget: %+v", keys)
		}
	})
	for _, w := range warnings {
		if strings.Contains(w, testPassphrase) {
			t.Errorf("a warning shows the passphrase: %q", w)
		}
	}
}

func mustSealedConfig(t *testing.T, st interface {
	Open(context.Context) ([]byte, error)
}) []byte {
	t.Helper()
	b, err := st.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b
}
