package repo

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/mem"
)

func TestAddKeyOpensWithEither(t *testing.T) {
	ctx := context.Background()
	r, st := newTestRepo(t)
	second, err := r.AddKey(ctx, []byte("second passphrase"), TestKDF)
	if err != nil {
		t.Fatal(err)
	}
	if second == r.KeyName() || len(second) != 64 {
		t.Fatalf("AddKey returned %q (first key %q)", second, r.KeyName())
	}
	if got := objectNames(t, st, storage.KindKey); !slices.Equal(got, sortedOf(r.KeyName(), second)) {
		t.Fatalf("key objects %v, want %v", got, sortedOf(r.KeyName(), second))
	}
	tests := []struct {
		pw, key string
	}{
		{testPassphrase, r.KeyName()},
		{"second passphrase", second},
	}
	for _, tt := range tests {
		r2 := openTestRepo(t, st, tt.pw, OpenOptions{})
		if r2.KeyName() != tt.key {
			t.Errorf("passphrase %q opened key %s, want %s", tt.pw, r2.KeyName(), tt.key)
		}
		if r2.BlobID(BlobData, []byte("same")) != r.BlobID(BlobData, []byte("same")) {
			t.Errorf("passphrase %q unwrapped other master keys", tt.pw)
		}
		keys, err := r2.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 2 {
			t.Fatalf("ListKeys: %d keys, want 2", len(keys))
		}
		for _, k := range keys {
			if k.Current != (k.Name == tt.key) {
				t.Errorf("key %s: Current = %v with %s in use", k.Name, k.Current, tt.key)
			}
			if k.Created.IsZero() {
				t.Errorf("key %s has no creation time", k.Name)
			}
		}
	}
	if _, err := Open(ctx, st, pass("neither"), OpenOptions{}); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("Open with an unknown passphrase: %v, want ErrWrongPassphrase", err)
	}
}

func sortedOf(s ...string) []string {
	slices.Sort(s)
	return s
}

func TestChangePassphrase(t *testing.T) {
	ctx := context.Background()
	r, st := newTestRepo(t)
	other, err := r.AddKey(ctx, []byte("other"), TestKDF)
	if err != nil {
		t.Fatal(err)
	}
	old := r.KeyName()
	before := len(objectNames(t, st, storage.KindKey))

	name, err := r.ChangePassphrase(ctx, []byte("new passphrase"), TestKDF)
	if err != nil {
		t.Fatal(err)
	}
	if name == old || r.KeyName() != name {
		t.Errorf("ChangePassphrase returned %s, KeyName %s, old key %s", name, r.KeyName(), old)
	}
	keys := objectNames(t, st, storage.KindKey)
	if len(keys) != before {
		t.Errorf("%d keys after ChangePassphrase, %d before", len(keys), before)
	}
	if slices.Contains(keys, old) || !slices.Contains(keys, name) || !slices.Contains(keys, other) {
		t.Errorf("keys after ChangePassphrase: %v; want %s and %s without %s", keys, name, other, old)
	}

	if _, err := Open(ctx, st, pass(testPassphrase), OpenOptions{}); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("Open with the old passphrase: %v, want ErrWrongPassphrase", err)
	}
	if r2 := openTestRepo(t, st, "new passphrase", OpenOptions{}); r2.KeyName() != name {
		t.Errorf("the new passphrase opened key %s, want %s", r2.KeyName(), name)
	}
	if r2 := openTestRepo(t, st, "other", OpenOptions{}); r2.KeyName() != other {
		t.Errorf("the other passphrase opened key %s, want %s", r2.KeyName(), other)
	}
	// The new key is the one in use now.
	if err := r.RemoveKey(ctx, name); !errors.Is(err, ErrKeyInUse) {
		t.Errorf("RemoveKey of the new key in use: %v, want ErrKeyInUse", err)
	}
}

func TestRemoveKey(t *testing.T) {
	ctx := context.Background()
	r, st := newTestRepo(t)
	other, err := r.AddKey(ctx, []byte("other"), TestKDF)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveKey(ctx, r.KeyName()); !errors.Is(err, ErrKeyInUse) {
		t.Fatalf("RemoveKey of the key in use: %v, want ErrKeyInUse", err)
	}
	if n := len(objectNames(t, st, storage.KindKey)); n != 2 {
		t.Fatalf("a refused RemoveKey left %d keys, want 2", n)
	}
	if err := r.RemoveKey(ctx, other); err != nil {
		t.Fatalf("RemoveKey of another key: %v", err)
	}
	if got := objectNames(t, st, storage.KindKey); !slices.Equal(got, []string{r.KeyName()}) {
		t.Errorf("keys after RemoveKey: %v, want only %s", got, r.KeyName())
	}
	if _, err := Open(ctx, st, pass("other"), OpenOptions{}); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("Open with the removed key's passphrase: %v, want ErrWrongPassphrase", err)
	}
	if err := r.RemoveKey(ctx, other); err == nil {
		t.Error("removing a key twice succeeded")
	}

	// A session opened with the second key may remove the first.
	if _, err := r.AddKey(ctx, []byte("other"), TestKDF); err != nil {
		t.Fatal(err)
	}
	r2 := openTestRepo(t, st, "other", OpenOptions{})
	if err := r2.RemoveKey(ctx, r.KeyName()); err != nil {
		t.Fatalf("RemoveKey from another session: %v", err)
	}
	if _, err := Open(ctx, st, pass(testPassphrase), OpenOptions{}); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("Open with the removed first passphrase: %v, want ErrWrongPassphrase", err)
	}
	openTestRepo(t, st, "other", OpenOptions{})
}

func TestResolveKey(t *testing.T) {
	ctx := context.Background()
	r, st := newTestRepo(t)
	// Seventeen keys: by the pigeonhole principle two of them share their
	// first hex digit.
	for i := range 16 {
		if _, err := r.AddKey(ctx, []byte{'k', byte(i)}, TestKDF); err != nil {
			t.Fatal(err)
		}
	}
	names := objectNames(t, st, storage.KindKey)
	if len(names) != 17 {
		t.Fatalf("%d keys, want 17", len(names))
	}
	shared := ""
	for i := 1; i < len(names); i++ {
		if names[i][0] == names[i-1][0] {
			shared = names[i][:1]
		}
	}
	// The shortest prefix of the first key that no other key has.
	unique := names[0]
	for n := 1; n <= len(names[0]); n++ {
		if !strings.HasPrefix(names[1], names[0][:n]) {
			unique = names[0][:n]
			break
		}
	}
	tests := []struct {
		prefix string
		want   string
		is     error
	}{
		{names[0], names[0], nil},
		{unique, names[0], nil},
		{names[16][:12], names[16], nil},
		{shared, "", ErrAmbiguous},
		{"", "", ErrNoSuchKey},
		{"zz", "", ErrNoSuchKey},
		{names[0] + "0", "", ErrNoSuchKey},
		{strings.ToUpper(names[0][:8]) + "x", "", ErrNoSuchKey},
	}
	for _, tt := range tests {
		got, err := r.ResolveKey(ctx, tt.prefix)
		if tt.is != nil {
			if !errors.Is(err, tt.is) {
				t.Errorf("ResolveKey(%q) = %q, %v; want %v", tt.prefix, got, err, tt.is)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ResolveKey(%q) = %q, %v; want %q", tt.prefix, got, err, tt.want)
		}
	}
}

// TestTamperedKey alters the only key object, or one of two, and checks
// it never opens and, as the only key, is reported as corrupt when that
// can be told from a wrong passphrase.
func TestTamperedKey(t *testing.T) {
	ctx := context.Background()
	_, base := newTestRepo(t)
	name := objectNames(t, base, storage.KindKey)[0]
	orig := getObject(t, base, storage.KindKey, name)
	sealedCfg, err := base.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) int {
		i := bytes.Index(orig, []byte(s))
		if i < 0 {
			t.Fatalf("key object has no %q: %s", s, orig)
		}
		return i
	}
	dataStart := at(`"data":"`) + len(`"data":"`)
	tests := []struct {
		name    string
		b       []byte
		rename  bool // store under the SHA-256 of the new bytes, so the name check passes
		corrupt bool // the only key must be reported as corrupt, not a wrong passphrase
	}{
		{"opening brace, old name", flipped(orig, 0), false, true},
		{"opening brace, renamed", flipped(orig, 0), true, true},
		{"sealed data, old name", flipped(orig, dataStart+10), false, true},
		{"sealed data, renamed", flipped(orig, dataStart+10), true, true},
		{"last byte, old name", flipped(orig, len(orig)-1), false, true},
		{"last byte, renamed", flipped(orig, len(orig)-1), true, true},
		{"kdf name, renamed", flipped(orig, at(`argon2id`)), true, true},
		{"truncated, old name", orig[:len(orig)/2], false, true},
		{"truncated, renamed", orig[:len(orig)/2], true, true},
		{"15-byte salt, renamed", shortSalt(t, orig), true, true},
		{"KDF time zero, renamed", bytes.Replace(orig, []byte(`"time":1`), []byte(`"time":0`), 1), true, true},
		{"unknown field, renamed", bytes.Replace(orig, []byte(`{`), []byte(`{"x":1,`), 1), true, true},
		// A byte of the sealed data or of an authenticated field changed
		// to another valid character: the object still parses and fails
		// only authentication, which a wrong passphrase fails too. Its
		// old name gives it away; renamed, it is a different key object.
		{"sealed data swapped, old name", swapBase64(orig, dataStart+10), false, true},
		{"sealed data swapped, renamed", swapBase64(orig, dataStart+10), true, false},
		{"salt swapped, renamed", swapBase64(orig, at(`"salt":"`)+len(`"salt":"`)+3), true, false},
		{"created changed, renamed", bytes.Replace(orig, []byte(`"created":"2`), []byte(`"created":"1`), 1), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.b
			if bytes.Equal(b, orig) {
				t.Fatal("edit changed nothing")
			}
			newName := name
			if tt.rename {
				newName = sha256Name(b)
			}

			st := newStoreWithConfig(t, sealedCfg)
			putObject(t, st, storage.KindKey, newName, b)
			_, err := Open(ctx, st, pass(testPassphrase), OpenOptions{})
			switch {
			case err == nil:
				t.Fatal("Open succeeded with a tampered key")
			case tt.corrupt:
				if errors.Is(err, ErrWrongPassphrase) {
					t.Fatalf("Open: %v; want a corrupt key, not a wrong passphrase", err)
				}
				if ie := asIntegrity(t, err); ie.Kind != storage.KindKey || ie.Name != newName {
					t.Errorf("IntegrityError names %s %s, want key %s", ie.Kind, ie.Name, newName)
				}
			default:
				if !errors.Is(err, ErrWrongPassphrase) && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Open: %v; want ErrWrongPassphrase or ErrCorrupt", err)
				}
			}

			// Next to an intact key the tampered one is skipped.
			putObject(t, st, storage.KindKey, name, orig)
			if newName == name {
				return // the intact key replaced it
			}
			r := openTestRepo(t, st, testPassphrase, OpenOptions{})
			if r.KeyName() != name {
				t.Errorf("opened with key %s, want the intact %s", r.KeyName(), name)
			}
			// ListKeys parses every key without opening it: it reports the
			// objects that fail the name check or do not parse.
			keys, err := r.ListKeys(ctx)
			if tt.corrupt && !errors.Is(err, ErrCorrupt) {
				t.Errorf("ListKeys with a tampered key: %v, want ErrCorrupt", err)
			}
			if !tt.corrupt && (err != nil || len(keys) != 2) {
				t.Errorf("ListKeys = %d keys, %v; want 2 keys", len(keys), err)
			}
		})
	}
}

// swapBase64 replaces the base64 character at i by another one.
func swapBase64(b []byte, i int) []byte {
	c := bytes.Clone(b)
	if c[i] == 'A' {
		c[i] = 'B'
	} else {
		c[i] = 'A'
	}
	return c
}

// shortSalt returns the key object with its salt cut to 15 bytes.
func shortSalt(t *testing.T, orig []byte) []byte {
	t.Helper()
	kf, err := parseKeyFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	kf.Salt = kf.Salt[:15]
	return mustJSON(kf)
}

// newStoreWithConfig returns a created memory store holding cfg as its
// config and no objects.
func newStoreWithConfig(t *testing.T, cfg []byte) storage.Store {
	t.Helper()
	st := mem.New()
	if err := st.Create(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	return st
}
