package repo

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/mem"
)

func TestCreateThenOpen(t *testing.T) {
	ctx := context.Background()
	r, st := newTestRepo(t)
	r2 := openTestRepo(t, st, testPassphrase, OpenOptions{})

	if got, want := r2.Config(), r.Config(); got != want {
		t.Errorf("opened config = %+v, created %+v", got, want)
	}
	cfg := r2.Config()
	if cfg.Version != FormatVersion || len(cfg.ID) != 64 || cfg.PackSize != testPackSize {
		t.Errorf("config = %+v: want version %d, a 64-character id and pack size %d", cfg, FormatVersion, testPackSize)
	}
	if cfg.Chunker.Min != DefaultChunkMin || cfg.Chunker.Avg != DefaultChunkAvg || cfg.Chunker.Max != DefaultChunkMax {
		t.Errorf("chunker = %+v, want the defaults", cfg.Chunker)
	}
	if r2.KeyName() != r.KeyName() || r2.KeyName() == "" {
		t.Errorf("Open used key %q, Create wrote %q", r2.KeyName(), r.KeyName())
	}
	// Same master keys: blob ids and the chunker key agree.
	if r.BlobID(BlobData, []byte("x")) != r2.BlobID(BlobData, []byte("x")) {
		t.Error("the opened repository computes different blob ids")
	}
	if !bytes.Equal(r.ChunkerKey(), r2.ChunkerKey()) || len(r.ChunkerKey()) != keySize {
		t.Error("the opened repository has a different chunker key")
	}
	// A second repository has other keys.
	other, _ := newTestRepo(t)
	if other.BlobID(BlobData, []byte("x")) == r.BlobID(BlobData, []byte("x")) || other.Config().ID == r.Config().ID {
		t.Error("two repositories share keys or ids")
	}

	// What one session writes, the other reads.
	ids, _ := saveBlobs(t, r, []testBlob{{BlobData, []byte("hello, coffer")}})
	if err := r2.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := r2.LoadBlob(ctx, BlobData, ids[0]); err != nil || string(got) != "hello, coffer" {
		t.Errorf("LoadBlob after reopening = %q, %v", got, err)
	}
}

func TestCreateRejects(t *testing.T) {
	ctx := context.Background()
	_, used := newTestRepo(t)
	tests := []struct {
		name string
		st   storage.Store
		pw   string
		opt  CreateOptions
		is   error // nil: any error
	}{
		{"store already holds a repository", used, "pw", CreateOptions{KDF: TestKDF}, storage.ErrExists},
		{"empty passphrase", mem.New(), "", CreateOptions{KDF: TestKDF}, nil},
		{"pack size below 1 MiB", mem.New(), "pw", CreateOptions{KDF: TestKDF, PackSize: 1<<20 - 1}, nil},
		{"pack size above 1 GiB", mem.New(), "pw", CreateOptions{KDF: TestKDF, PackSize: 1<<30 + 1}, nil},
		{"avg chunk not a power of two", mem.New(), "pw", CreateOptions{KDF: TestKDF, ChunkMin: 1000, ChunkAvg: 3000, ChunkMax: 9000}, nil},
		{"min chunk not below avg", mem.New(), "pw", CreateOptions{KDF: TestKDF, ChunkMin: 4096, ChunkAvg: 4096, ChunkMax: 9000}, nil},
		{"max chunk above the blob limit", mem.New(), "pw", CreateOptions{KDF: TestKDF, ChunkMin: 4096, ChunkAvg: 8192, ChunkMax: MaxBlobSize + 1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Create(ctx, tt.st, []byte(tt.pw), tt.opt)
			if err == nil {
				t.Fatalf("Create succeeded with config %+v", r.Config())
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("Create: %v, want %v", err, tt.is)
			}
			if tt.st != used {
				if _, err := tt.st.Open(ctx); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("a rejected Create left a repository behind (Open: %v)", err)
				}
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	r, st := newTestRepo(t)
	sealedCfg, err := st.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys := objectNames(t, st, storage.KindKey)
	if len(keys) != 1 {
		t.Fatalf("a new repository has %d keys, want 1", len(keys))
	}
	keyBytes := getObject(t, st, storage.KindKey, keys[0])

	// withConfig returns a store holding cfg as its config and, when
	// withKey is set, the repository's key object.
	withConfig := func(cfg []byte, withKey bool) storage.Store {
		s := mem.New()
		if err := s.Create(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		if withKey {
			putObject(t, s, storage.KindKey, keys[0], keyBytes)
		}
		return s
	}
	newer := append([]byte{FormatVersion + 1}, sealedCfg[1:]...)
	// A config sealed in the current envelope that says, inside, it is
	// of a newer format.
	cfg := r.Config()
	cfg.Version = FormatVersion + 1
	newerInside, err := r.sealObject(configKind, mustJSON(cfg))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Version, cfg.ID = FormatVersion, "../../etc"
	badID, err := r.sealObject(configKind, mustJSON(cfg))
	if err != nil {
		t.Fatal(err)
	}
	notJSON, err := r.sealObject(configKind, []byte("not json"))
	if err != nil {
		t.Fatal(err)
	}
	errPrompt := errors.New("no terminal")

	tests := []struct {
		name        string
		st          storage.Store
		pw          func() ([]byte, error)
		is          error
		integrity   bool // the error must carry an *IntegrityError
		kind        storage.Kind
		askPassword bool // whether the passphrase func may be called
	}{
		{"wrong passphrase", st, pass("not it"), ErrWrongPassphrase, false, "", true},
		{"empty passphrase", st, pass(""), ErrWrongPassphrase, false, "", true},
		{"passphrase with a trailing newline", st, pass(testPassphrase + "\n"), ErrWrongPassphrase, false, "", true},
		{"prompt fails", st, func() ([]byte, error) { return nil, errPrompt }, errPrompt, false, "", true},
		{"empty store", mem.New(), pass(testPassphrase), storage.ErrNotFound, false, "", false},
		{"newer format", withConfig(newer, true), pass(testPassphrase), ErrNewerFormat, false, "", false},
		{"much newer format", withConfig([]byte{0xff}, false), pass(testPassphrase), ErrNewerFormat, false, "", false},
		{"sealed config of a newer format", withConfig(newerInside, true), pass(testPassphrase), ErrNewerFormat, false, "", true},
		{"sealed config with a bad id", withConfig(badID, true), pass(testPassphrase), ErrCorrupt, true, "config", true},
		{"sealed config not JSON", withConfig(notJSON, true), pass(testPassphrase), ErrCorrupt, true, "config", true},
		{"empty config", withConfig(nil, true), pass(testPassphrase), ErrCorrupt, true, "config", false},
		{"config version 0", withConfig(append([]byte{0}, sealedCfg[1:]...), true), pass(testPassphrase), ErrCorrupt, true, "config", true},
		{"config nonce byte flipped", withConfig(flipped(sealedCfg, 1), true), pass(testPassphrase), ErrCorrupt, true, "config", true},
		{"config ciphertext byte flipped", withConfig(flipped(sealedCfg, len(sealedCfg)/2), true), pass(testPassphrase), ErrCorrupt, true, "config", true},
		{"config tag byte flipped", withConfig(flipped(sealedCfg, len(sealedCfg)-1), true), pass(testPassphrase), ErrCorrupt, true, "config", true},
		{"config truncated", withConfig(sealedCfg[:len(sealedCfg)-1], true), pass(testPassphrase), ErrCorrupt, true, "config", true},
		{"config shorter than the envelope", withConfig(sealedCfg[:10], true), pass(testPassphrase), ErrCorrupt, true, "config", true},
		{"config from another repository", withConfig(otherConfig(t), true), pass(testPassphrase), ErrCorrupt, true, "config", true},
		{"no key objects", withConfig(sealedCfg, false), pass(testPassphrase), ErrCorrupt, true, storage.KindKey, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked := 0
			pw := func() ([]byte, error) { asked++; return tt.pw() }
			r, err := Open(ctx, tt.st, pw, OpenOptions{})
			if err == nil {
				t.Fatalf("Open succeeded (key %s)", r.KeyName())
			}
			if !errors.Is(err, tt.is) {
				t.Fatalf("Open: %v, want %v", err, tt.is)
			}
			if tt.is != ErrWrongPassphrase && errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("Open: %v also claims a wrong passphrase", err)
			}
			if tt.integrity {
				if ie := asIntegrity(t, err); ie.Kind != tt.kind {
					t.Errorf("IntegrityError kind %q, want %q", ie.Kind, tt.kind)
				}
			}
			if !tt.askPassword && asked != 0 {
				t.Errorf("the passphrase was asked for %d times, want never", asked)
			}
			if tt.askPassword && asked != 1 {
				t.Errorf("the passphrase was asked for %d times, want once", asked)
			}
		})
	}
}

// otherConfig returns the sealed config of another repository.
func otherConfig(t *testing.T) []byte {
	_, st := newTestRepo(t)
	b, err := st.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadSealedConfig(t *testing.T) {
	ctx := context.Background()
	_, st := newTestRepo(t)
	sealed, err := ReadSealedConfig(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) == 0 || sealed[0] != FormatVersion {
		t.Errorf("ReadSealedConfig returned %d bytes starting %v", len(sealed), sealed[:min(1, len(sealed))])
	}
	for _, v := range []byte{FormatVersion + 1, 0x80, 0xff} {
		s := mem.New()
		if err := s.Create(ctx, []byte{v, 1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadSealedConfig(ctx, s); !errors.Is(err, ErrNewerFormat) {
			t.Errorf("version %d: %v, want ErrNewerFormat", v, err)
		}
	}
}
