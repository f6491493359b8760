package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/cofferhq/coffer/storage"
)

const keyVersion = 1

// KDFParams are the Argon2id parameters of one key object.
type KDFParams struct {
	Time      uint32 `json:"time"`       // passes over memory
	MemoryKiB uint32 `json:"memory_kib"` // memory in KiB
	Threads   uint8  `json:"threads"`
}

// DefaultKDF follows RFC 9106's second recommended option (t=3, 64 MiB, p=4):
// about a quarter of a second here, affordable on small machines.
var DefaultKDF = KDFParams{Time: 3, MemoryKiB: 64 << 10, Threads: 4}

// TestKDF is a cheap setting for tests only; it offers no protection.
var TestKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// keyFile is the stored form of a key object. Everything but Data is
// authenticated as associated data, so no field can be altered unnoticed.
type keyFile struct {
	Version int       `json:"version"`
	KDF     string    `json:"kdf"`
	Params  KDFParams `json:"params"`
	Salt    []byte    `json:"salt"`
	Created time.Time `json:"created"`
	Host    string    `json:"host"`
	User    string    `json:"user"`
	Data    []byte    `json:"data,omitempty"` // sealed master keys
}

// KeyInfo describes a key object for `key list`.
type KeyInfo struct {
	Name    string    `json:"id"`
	Created time.Time `json:"created"`
	Host    string    `json:"host"`
	User    string    `json:"user"`
	Current bool      `json:"current"` // the key this session opened the repository with
}

func (k *keyFile) ad() []byte {
	hdr := *k
	hdr.Data = nil
	b, err := json.Marshal(hdr)
	if err != nil {
		panic(err) // unreachable: the struct always marshals
	}
	return b
}

func (k *keyFile) wrappingKey(passphrase []byte) []byte {
	release := prepareKDFMemory(int(k.Params.MemoryKiB) << 10)
	key := argon2.IDKey(passphrase, k.Salt, k.Params.Time, k.Params.MemoryKiB, k.Params.Threads, keySize)
	// Argon2id's memory (64 MiB by default) is garbage now. Collected at
	// once and given back to the kernel, in small pages from now on, it is
	// neither under the next collection's goal, which it doubled, nor
	// resident for the rest of the command: the command's peak stays the
	// derivation's own (a local ls peaked 1-1.5 MB lower than with the
	// memory collected but kept).
	release()
	debug.FreeOSMemory()
	return key
}

// sealKey wraps mk under passphrase and returns the stored bytes.
func sealKey(mk *masterKeys, passphrase []byte, params KDFParams) ([]byte, error) {
	kf := keyFile{Version: keyVersion, KDF: "argon2id", Params: params, Salt: make([]byte, 16),
		Created: time.Now().UTC().Truncate(time.Second)}
	kf.Host, _ = os.Hostname()
	if u, err := user.Current(); err == nil {
		kf.User = u.Username
	}
	if _, err := rand.Read(kf.Salt); err != nil {
		return nil, err
	}
	plain, err := json.Marshal(mk)
	if err != nil {
		return nil, err
	}
	c, err := newCrypter(&masterKeys{Encrypt: kf.wrappingKey(passphrase), MAC: make([]byte, keySize), Chunker: make([]byte, keySize)})
	if err != nil {
		return nil, err
	}
	kf.Data = c.seal(nil, plain, kf.ad())
	return json.Marshal(kf)
}

// parseKeyFile decodes a stored key object without opening it.
func parseKeyFile(b []byte) (*keyFile, error) {
	var kf keyFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	if kf.Version > keyVersion {
		return nil, fmt.Errorf("key version %d: %w", kf.Version, ErrNewerFormat)
	}
	if kf.Version != keyVersion || kf.KDF != "argon2id" {
		return nil, fmt.Errorf("unknown key version %d or kdf %q", kf.Version, kf.KDF)
	}
	p := kf.Params
	if len(kf.Salt) < 16 || p.Time == 0 || p.Time > 100 || p.Threads == 0 || p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > 4<<20 {
		return nil, errors.New("implausible key derivation parameters")
	}
	return &kf, nil
}

// openKeyFile unwraps the master keys with passphrase. errAuth means the
// passphrase is wrong (or the object was altered, which looks the same).
func openKeyFile(kf *keyFile, passphrase []byte) (*masterKeys, error) {
	c, err := newCrypter(&masterKeys{Encrypt: kf.wrappingKey(passphrase), MAC: make([]byte, keySize), Chunker: make([]byte, keySize)})
	if err != nil {
		return nil, err
	}
	plain, err := c.open(nil, kf.Data, kf.ad())
	if err != nil {
		return nil, err
	}
	var mk masterKeys
	if err := json.Unmarshal(plain, &mk); err != nil || !mk.valid() {
		return nil, errors.New("wrapped master keys are malformed")
	}
	return &mk, nil
}

// putKey stores a new key object wrapping mk and returns its name.
func putKey(ctx context.Context, st storage.Store, mk *masterKeys, passphrase []byte, params KDFParams) (string, error) {
	b, err := sealKey(mk, passphrase, params)
	if err != nil {
		return "", fmt.Errorf("creating key: %w", err)
	}
	sum := sha256.Sum256(b)
	name := hex.EncodeToString(sum[:])
	if err := st.Put(ctx, storage.KindKey, name, storage.BytesBody(b)); err != nil {
		return "", fmt.Errorf("storing key %s: %w", name[:8], err)
	}
	return name, nil
}

// loadKeyFile fetches and parses one key object, checking its name.
func loadKeyFile(ctx context.Context, st storage.Store, name string) (*keyFile, error) {
	b, err := readAll(ctx, st, storage.KindKey, name, 1<<20)
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != name {
		return nil, corrupt(storage.KindKey, name, "content does not match its name")
	}
	kf, err := parseKeyFile(b)
	if err != nil {
		if errors.Is(err, ErrNewerFormat) {
			return nil, fmt.Errorf("key %s: %w", name[:8], err)
		}
		return nil, &IntegrityError{Kind: storage.KindKey, Name: name, Err: err}
	}
	return kf, nil
}

// findKey tries the passphrase on every key object and returns the first
// that opens. Corrupted key objects are skipped while another key may
// still open; if none opens, a corruption found on the way is reported
// rather than ErrWrongPassphrase.
func findKey(ctx context.Context, st storage.Store, passphrase []byte) (*masterKeys, string, error) {
	var names []string
	if err := st.List(ctx, storage.KindKey, func(name string, _ int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		return nil, "", fmt.Errorf("listing keys: %w", err)
	}
	if len(names) == 0 {
		return nil, "", corrupt(storage.KindKey, "(none)", "the repository has no key objects")
	}
	var firstCorrupt, newer error
	for _, name := range names {
		kf, err := loadKeyFile(ctx, st, name)
		if errors.Is(err, ErrNewerFormat) {
			newer = err
			continue
		}
		if err != nil {
			if firstCorrupt == nil {
				firstCorrupt = err
			}
			continue
		}
		mk, err := openKeyFile(kf, passphrase)
		if err == nil {
			return mk, name, nil
		}
		if !errors.Is(err, errAuth) && firstCorrupt == nil {
			firstCorrupt = &IntegrityError{Kind: storage.KindKey, Name: name, Err: err}
		}
	}
	if newer != nil {
		// The passphrase may belong to a key only a newer coffer reads.
		return nil, "", newer
	}
	if firstCorrupt != nil && len(names) == 1 {
		return nil, "", firstCorrupt
	}
	return nil, "", ErrWrongPassphrase
}

// readAll reads a whole object, refusing ones larger than limit.
func readAll(ctx context.Context, st storage.Store, kind storage.Kind, name string, limit int64) ([]byte, error) {
	rc, err := st.Get(ctx, kind, name, nil)
	if cerr := storeCorrupt(kind, name, err); cerr != nil {
		// A store that checks content itself (a registry, by digest)
		// finds what this package finds on other stores: the same error.
		return nil, cerr
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", kind, short(name), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if cerr := storeCorrupt(kind, name, err); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", kind, short(name), err)
	}
	if int64(len(b)) > limit {
		return nil, corrupt(kind, name, "larger than the %d-byte limit", limit)
	}
	return b, nil
}

func short(name string) string {
	if len(name) > 8 {
		return name[:8]
	}
	return name
}

// ListKeys returns the repository's key objects.
func (r *Repository) ListKeys(ctx context.Context) ([]KeyInfo, error) {
	var names []string
	if err := r.store.List(ctx, storage.KindKey, func(name string, _ int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("listing keys: %w", err)
	}
	var keys []KeyInfo
	for _, name := range names {
		kf, err := loadKeyFile(ctx, r.store, name)
		if err != nil {
			return nil, err
		}
		keys = append(keys, KeyInfo{Name: name, Created: kf.Created, Host: kf.Host, User: kf.User, Current: name == r.keyName})
	}
	return keys, nil
}

// AddKey stores a new key object for passphrase and returns its name.
func (r *Repository) AddKey(ctx context.Context, passphrase []byte, params KDFParams) (string, error) {
	return putKey(ctx, r.store, r.keys, passphrase, params)
}

// ResolveKey returns the full name of the key whose name starts with prefix.
func (r *Repository) ResolveKey(ctx context.Context, prefix string) (string, error) {
	var matches []string
	if err := r.store.List(ctx, storage.KindKey, func(name string, _ int64) error {
		if strings.HasPrefix(name, prefix) {
			matches = append(matches, name)
		}
		return nil
	}); err != nil {
		return "", fmt.Errorf("listing keys: %w", err)
	}
	switch {
	case prefix == "" || len(matches) == 0:
		return "", fmt.Errorf("no key id starts with %q: %w", prefix, ErrNoSuchKey)
	case len(matches) > 1:
		return "", fmt.Errorf("key id prefix %q matches %d keys: %w", prefix, len(matches), ErrAmbiguous)
	}
	return matches[0], nil
}

// RemoveKey deletes a key object. The key the repository was opened with
// cannot be removed, so a user cannot lock themselves out by mistake.
func (r *Repository) RemoveKey(ctx context.Context, name string) error {
	if name == r.keyName {
		return fmt.Errorf("key %s is the one in use: %w", name[:8], ErrKeyInUse)
	}
	if err := r.store.Delete(ctx, storage.KindKey, name); err != nil {
		return fmt.Errorf("removing key %s: %w", short(name), err)
	}
	return nil
}

// ChangePassphrase replaces the key in use by one for passphrase. The new
// key is stored before the old one is removed, so a failure in between
// leaves both working.
func (r *Repository) ChangePassphrase(ctx context.Context, passphrase []byte, params KDFParams) (string, error) {
	name, err := r.AddKey(ctx, passphrase, params)
	if err != nil {
		return "", err
	}
	old := r.keyName
	r.keyName = name
	if err := r.store.Delete(ctx, storage.KindKey, old); err != nil {
		return name, fmt.Errorf("new key %s stored, but removing the old key %s failed: %w", name[:8], old[:8], err)
	}
	return name, nil
}
