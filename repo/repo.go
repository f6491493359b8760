package repo

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer/internal/cachefile"
	"golang.org/x/sync/errgroup"

	"github.com/cofferhq/coffer/storage"
)

// FormatVersion is the repository format this package reads and writes.
const FormatVersion = 1

// Chunker parameters fixed at create time; changing them would break dedup
// against existing data.
const (
	DefaultChunkMin = 512 << 10
	DefaultChunkAvg = 1 << 20
	DefaultChunkMax = 8 << 20
	DefaultPackSize = 32 << 20
)

// Pack sizes. A repository's config holds the default its backups use
// (MinConfigPackSize to MaxPackSize, chosen at create); a backup may
// choose another, down to MinPackSize, for a store that limits object
// sizes. Readers take packs of any size, so the choice is per backup.
const (
	MinPackSize       = 512 << 10
	MinConfigPackSize = 1 << 20
	MaxPackSize       = 1 << 30
)

// CheckPackSize returns an error unless n is a pack size a backup may use.
func CheckPackSize(n int) error {
	if n < MinPackSize || n > MaxPackSize {
		return fmt.Errorf("pack size %d must be between 512 KiB and 1 GiB", n)
	}
	return nil
}

// ChunkerAlgorithm is the go-cdc-chunkers algorithm every repository's
// config names: its cut points decide which chunks a file splits into, so
// they are part of the format (snapshot's faster chunker reproduces them).
const ChunkerAlgorithm = "fastcdc-v1.0.0"

// Config is the repository configuration, stored sealed as the store's
// config object.
type Config struct {
	Version  int       `json:"version"`
	ID       string    `json:"id"` // random, 64 hex characters; names the local cache
	Created  time.Time `json:"created"`
	PackSize int       `json:"pack_size"`
	Chunker  struct {
		Algorithm string `json:"algorithm"`
		Min       int    `json:"min"`
		Avg       int    `json:"avg"`
		Max       int    `json:"max"`
	} `json:"chunker"`
}

// CreateOptions tune a new repository. Zero values select the defaults.
type CreateOptions struct {
	KDF      KDFParams // DefaultKDF when zero
	PackSize int       // DefaultPackSize when zero
	ChunkMin int       // the three chunk sizes default together
	ChunkAvg int
	ChunkMax int
	// ShareKeysWith, when not nil, gives the new repository that
	// repository's master keys and chunker parameters (`create -from`):
	// blob ids are then the same in both, so that sync copies packs as
	// they are and both dedup against each other's data. The chunk
	// sizes above are then ignored.
	ShareKeysWith *Repository
}

// OpenOptions tune how a repository is opened.
type OpenOptions struct {
	// CacheDir, when not empty, holds a local copy of index objects and
	// snapshots under CacheDir/<repository id>/. Without it every open
	// reads all indexes, and every listing all snapshots.
	CacheDir string
	// ReadStored reads index objects and snapshots from the store even
	// where the cache has them (what is read still refreshes the cache):
	// a check verifies what is stored, which an intact cached copy
	// would hide.
	ReadStored bool
	// TempDir holds packs while they are written and uploaded, one per
	// uploader plus the two being filled (data and trees), for stores that
	// do not make pack files themselves (storage.FilePutter);
	// os.TempDir() when empty.
	TempDir string
	// Warnf, when not nil, prints a warning for the user, such as
	// snapshots this client has seen that the store no longer shows.
	Warnf func(format string, args ...any)
	// KeyCache, when not nil, is looked in for the repository's keys
	// before the passphrase is asked for, and keeps them once a
	// passphrase has opened it.
	KeyCache *KeyCache
}

// Repository is an open coffer repository. Its methods are safe for
// concurrent use.
type Repository struct {
	store    storage.Store
	cfg      Config
	keys     *masterKeys
	keyName  string
	codec    *codec
	index    *Index
	cacheDir string
	tempDir  string
	trees    *treeCache

	lock        *Lock       // held by this process, if any
	plansSeen   map[ID]bool // prune plans LoadIndex saw
	indexLoaded []ID        // index objects LoadIndex read
	now         func() time.Time
	lockPoll    time.Duration // how often an exclusive locker looks for merges to end
	lockRefresh time.Duration

	warnf func(format string, args ...any)
	// readStored: cached objects are read from the store
	// (OpenOptions.ReadStored).
	readStored bool
	seen       *seenGuard // shared by views (withIndex)
	// blobBufs holds loadBlobs' buffers for sealed blobs (*[]byte), which
	// a restore reuses from pack to pack rather than allocating and
	// clearing them for each.
	blobBufs *sync.Pool
}

// Create initialises a repository in an empty store, protected by
// passphrase, and returns it opened.
func Create(ctx context.Context, st storage.Store, passphrase []byte, opt CreateOptions) (*Repository, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("empty passphrase: choose a non-empty passphrase")
	}
	if opt.KDF == (KDFParams{}) {
		opt.KDF = DefaultKDF
	}
	cfg := Config{Version: FormatVersion, Created: time.Now().UTC().Truncate(time.Second), PackSize: opt.PackSize}
	if cfg.PackSize == 0 {
		cfg.PackSize = DefaultPackSize
	}
	cfg.Chunker.Algorithm = ChunkerAlgorithm
	cfg.Chunker.Min, cfg.Chunker.Avg, cfg.Chunker.Max = opt.ChunkMin, opt.ChunkAvg, opt.ChunkMax
	if from := opt.ShareKeysWith; from != nil {
		cfg.Chunker = from.cfg.Chunker
	}
	if cfg.Chunker.Avg == 0 {
		cfg.Chunker.Min, cfg.Chunker.Avg, cfg.Chunker.Max = DefaultChunkMin, DefaultChunkAvg, DefaultChunkMax
	}
	var id [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	cfg.ID = hex.EncodeToString(id[:])
	if err := cfg.validate(); err != nil {
		return nil, err
	}

	mk, err := newMasterKeys()
	if err != nil {
		return nil, err
	}
	if from := opt.ShareKeysWith; from != nil {
		k := *from.keys
		mk = &k
	}
	r, err := newRepository(st, cfg, mk, "")
	if err != nil {
		return nil, err
	}
	sealed, err := r.sealObject(configKind, mustJSON(cfg))
	if err != nil {
		return nil, err
	}
	// The config goes first so that Create's emptiness check guards the
	// whole operation; a key written before it could slip into a store
	// someone else is creating at the same moment.
	if err := st.Create(ctx, sealed); err != nil {
		return nil, fmt.Errorf("creating repository at %s: %w", st.Location(), err)
	}
	name, err := putKey(ctx, st, mk, passphrase, opt.KDF)
	if err != nil {
		return nil, err
	}
	r.keyName = name
	return r, nil
}

func (c *Config) validate() error {
	ch := c.Chunker
	switch {
	case c.Version != FormatVersion:
		return fmt.Errorf("config version %d is not %d", c.Version, FormatVersion)
	case len(c.ID) != 64 || strings.Trim(c.ID, "0123456789abcdef") != "":
		// The id names the local cache directory, so it must be plain hex.
		return fmt.Errorf("repository id %q is not 64 hex digits", c.ID)
	case ch.Algorithm != ChunkerAlgorithm:
		return fmt.Errorf("unknown chunker %q", ch.Algorithm)
	case ch.Min < 64 || ch.Min >= ch.Avg || ch.Avg >= ch.Max || ch.Max > MaxBlobSize || ch.Avg&(ch.Avg-1) != 0:
		return fmt.Errorf("chunk sizes %d/%d/%d must satisfy 64 <= min < avg < max <= %d with avg a power of two", ch.Min, ch.Avg, ch.Max, MaxBlobSize)
	case c.PackSize < MinConfigPackSize || c.PackSize > MaxPackSize:
		return fmt.Errorf("pack size %d must be between 1 MiB and 1 GiB", c.PackSize)
	}
	return nil
}

// ReadSealedConfig returns the sealed (still encrypted) config of the
// repository in st. It needs no passphrase: the config's first byte, the
// format version, is outside the encryption, and it fails with
// ErrNewerFormat when this coffer cannot read that version, so that Open
// can say so before prompting.
func ReadSealedConfig(ctx context.Context, st storage.Store) ([]byte, error) {
	sealed, err := st.Open(ctx)
	if cerr := storeCorrupt("config", "config", err); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, err
	}
	if len(sealed) == 0 {
		return nil, corrupt("config", "config", "empty")
	}
	if sealed[0] > FormatVersion {
		return nil, fmt.Errorf("repository at %s has format version %d, this coffer reads up to %d, %w",
			st.Location(), sealed[0], FormatVersion, ErrNewerFormat)
	}
	return sealed, nil
}

// Open opens the repository in st. passphrase is called only after the
// store is known to hold a repository this coffer can read, so a user is
// not asked for a passphrase in vain.
func Open(ctx context.Context, st storage.Store, passphrase func() ([]byte, error), opt OpenOptions) (*Repository, error) {
	sealedCfg, err := ReadSealedConfig(ctx, st)
	if err != nil {
		return nil, err
	}
	if opt.KeyCache != nil {
		r, err := openCached(ctx, st, sealedCfg, opt)
		if r != nil || err != nil {
			return r, err
		}
	}
	pw, err := passphrase()
	if err != nil {
		return nil, err
	}
	mk, keyName, err := findKey(ctx, st, pw)
	if err != nil {
		return nil, err
	}
	r, err := openWithKeys(st, sealedCfg, mk, keyName, opt)
	if err != nil {
		return nil, err
	}
	if opt.KeyCache != nil {
		if err := opt.KeyCache.store(sealedCfg, st.Location(), keyName, mk); err != nil && r.warnf != nil {
			r.warnf("the key was not cached: %v", err)
		}
	}
	return r, nil
}

// openCached opens the repository with the keys opt.KeyCache holds for
// it, if any. It returns a nil repository and no error when there are
// none, or when they no longer open it: the key object they came from
// was removed (a changed passphrase ends the sessions of the old one),
// or they fail to open the config, which authenticates them.
func openCached(ctx context.Context, st storage.Store, sealedCfg []byte, opt OpenOptions) (*Repository, error) {
	e, err := opt.KeyCache.load(sealedCfg)
	if err != nil {
		if opt.Warnf != nil {
			opt.Warnf("the key cache is not used: %v", err)
		}
		return nil, nil
	}
	if e == nil {
		return nil, nil
	}
	found := false
	err = st.List(ctx, storage.KindKey, func(name string, _ int64) error {
		found = found || name == e.KeyName
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing keys: %w", err)
	}
	if !found {
		opt.KeyCache.remove(opt.KeyCache.entryPath(sealedCfg))
		return nil, nil
	}
	r, err := openWithKeys(st, sealedCfg, e.Keys, e.KeyName, opt)
	if errors.Is(err, errAuth) {
		opt.KeyCache.remove(opt.KeyCache.entryPath(sealedCfg))
		return nil, nil
	}
	return r, err
}

// openWithKeys opens the config with the master keys and returns the
// repository it describes.
func openWithKeys(st storage.Store, sealedCfg []byte, mk *masterKeys, keyName string, opt OpenOptions) (*Repository, error) {
	r, err := newRepository(st, Config{}, mk, keyName)
	if err != nil {
		return nil, err
	}
	plain, err := r.openObject(configKind, "config", sealedCfg)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(plain, &r.cfg); err != nil {
		return nil, corrupt("config", "config", "decoding: %v", err)
	}
	if r.cfg.Version > FormatVersion {
		return nil, fmt.Errorf("repository at %s has format version %d, this coffer reads up to %d, %w",
			st.Location(), r.cfg.Version, FormatVersion, ErrNewerFormat)
	}
	if err := r.cfg.validate(); err != nil {
		return nil, corrupt("config", "config", "%v", err)
	}
	if opt.CacheDir != "" {
		r.cacheDir = cachePath(opt.CacheDir, r.cfg.ID)
		cachefile.Tag(opt.CacheDir)
		cachefile.Use(r.cacheDir) // `coffer cache` tells caches in use from old ones
		r.trees = newTreeCache(r.cacheDir)
	}
	r.tempDir = opt.TempDir
	r.warnf = opt.Warnf
	r.readStored = opt.ReadStored
	return r, nil
}

func newRepository(st storage.Store, cfg Config, mk *masterKeys, keyName string) (*Repository, error) {
	c, err := newCodec(mk)
	if err != nil {
		return nil, err
	}
	return &Repository{store: st, cfg: cfg, keys: mk, keyName: keyName, codec: c, index: NewIndex(),
		now: time.Now, lockPoll: time.Second, lockRefresh: LockRefresh, seen: &seenGuard{warned: map[string]bool{}},
		blobBufs: &sync.Pool{}}, nil
}

// Config returns the repository configuration.
func (r *Repository) Config() Config { return r.cfg }

// Store returns the store the repository lives in.
func (r *Repository) Store() storage.Store { return r.store }

// Index returns the in-memory index, filled by LoadIndex.
func (r *Repository) Index() *Index { return r.index }

// KeyName returns the name of the key object that opened the repository.
func (r *Repository) KeyName() string { return r.keyName }

// BlobID returns the id a blob of type t with this plaintext has in this
// repository.
func (r *Repository) BlobID(t BlobType, plaintext []byte) ID { return r.codec.blobID(t, plaintext) }

// ChunkerKey returns the secret that keys the content-defined chunker, so
// chunk boundaries do not reveal which known files a repository holds.
func (r *Repository) ChunkerKey() []byte { return append([]byte(nil), r.keys.Chunker...) }

// Compact merges the store's bookkeeping (the OCI store's refs tags) so
// that it stays small as backups add to it. Merging deletes what other
// processes wrote, so only the holder of the exclusive lock does it
// (prune), which also keeps it apart from rewrites (docs/design.md,
// "Writers and deleters").
func (r *Repository) Compact(ctx context.Context) error {
	c, ok := r.store.(storage.Compacter)
	if !ok {
		return nil
	}
	if r.lock == nil || r.lock.info.Kind != LockExclusive {
		return errors.New("merging the store's references needs the exclusive lock")
	}
	return c.Compact(ctx)
}

// Close releases the store.
func (r *Repository) Close() error {
	r.trees.close()
	return r.store.Close()
}

// configKind names the config for associated data; it is not a store kind.
const configKind storage.Kind = "config"

// objectVersion is the version byte that starts every sealed object.
const objectVersion = 1

// sealObject frames and seals a whole object: version u8 | nonce | AES-GCM.
func (r *Repository) sealObject(kind storage.Kind, plaintext []byte) ([]byte, error) {
	framed := r.codec.frame(nil, plaintext, CompressionAuto)
	return r.codec.seal([]byte{objectVersion}, framed, objectAD(string(kind), objectVersion)), nil
}

// openObject authenticates and unframes a sealed object.
func (r *Repository) openObject(kind storage.Kind, name string, sealed []byte) ([]byte, error) {
	return r.openSealed(kind, name, sealed, false)
}

// openOwnedObject is openObject for a caller that owns sealed: it is
// decrypted in place, which saves a copy of a large index object.
// sealed no longer holds the object afterwards.
func (r *Repository) openOwnedObject(kind storage.Kind, name string, sealed []byte) ([]byte, error) {
	return r.openSealed(kind, name, sealed, true)
}

func (r *Repository) openSealed(kind storage.Kind, name string, sealed []byte, inPlace bool) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, corrupt(kind, name, "empty object")
	}
	if sealed[0] > objectVersion {
		return nil, fmt.Errorf("%s %s has format version %d: %w", kind, short(name), sealed[0], ErrNewerFormat)
	}
	if sealed[0] != objectVersion {
		return nil, corrupt(kind, name, "unknown format version %d", sealed[0])
	}
	var framed []byte
	var err error
	if ad := objectAD(string(kind), sealed[0]); inPlace {
		framed, err = r.codec.openInPlace(sealed[1:], ad)
	} else {
		framed, err = r.codec.open(nil, sealed[1:], ad)
	}
	if err != nil {
		return nil, &IntegrityError{Kind: kind, Name: name, Err: err}
	}
	plain, err := r.codec.unframe(nil, framed, maxObjectSize)
	if err != nil {
		return nil, &IntegrityError{Kind: kind, Name: name, Err: err}
	}
	return plain, nil
}

// SaveObject seals plaintext, stores it under its SHA-256 and returns that.
func (r *Repository) SaveObject(ctx context.Context, kind storage.Kind, plaintext []byte) (ID, error) {
	sealed, err := r.sealObject(kind, plaintext)
	if err != nil {
		return ID{}, err
	}
	id := ID(sha256.Sum256(sealed))
	if err := r.store.Put(ctx, kind, id.String(), storage.BytesBody(sealed)); err != nil {
		return ID{}, fmt.Errorf("storing %s %s: %w", kind, id.Short(), err)
	}
	return id, nil
}

// LoadObject reads, verifies and opens a sealed object.
func (r *Repository) LoadObject(ctx context.Context, kind storage.Kind, id ID) ([]byte, error) {
	sealed, err := r.readSealedObject(ctx, kind, id)
	if err != nil {
		return nil, err
	}
	return r.openObject(kind, id.String(), sealed)
}

// cacheSubdir names the cache directory of the kinds of objects every
// command reads, index objects and snapshots, which are kept there once
// read: they are named by the SHA-256 of their bytes and never change,
// so a cached copy is checked against its name as a fetched one is, and
// damage costs a download, not a wrong answer. On a registry, listing a
// thousand snapshots is otherwise a thousand requests per command.
func cacheSubdir(kind storage.Kind) (string, bool) {
	switch kind {
	case storage.KindIndex:
		return "index", true
	case storage.KindSnapshot:
		return "snapshots", true
	}
	return "", false
}

// readSealedObject returns an object's stored bytes, checked against its
// name: from the cache for the kinds kept there (cacheSubdir), which it
// fills, else from the store.
func (r *Repository) readSealedObject(ctx context.Context, kind storage.Kind, id ID) ([]byte, error) {
	cached := ""
	if sub, ok := cacheSubdir(kind); ok && r.cacheDir != "" {
		cached = filepath.Join(r.cacheDir, sub, id.String())
		if b, err := os.ReadFile(cached); !r.readStored && err == nil && ID(sha256.Sum256(b)) == id {
			return b, nil
		}
	}
	sealed, err := readAll(ctx, r.store, kind, id.String(), maxObjectSize)
	if err != nil {
		return nil, err
	}
	if ID(sha256.Sum256(sealed)) != id {
		return nil, corrupt(kind, id.String(), "content does not match its name (truncated or altered)")
	}
	if cached != "" {
		cachefile.Write(cached, sealed)
	}
	return sealed, nil
}

// pruneCache removes the cached objects of a kind that live, a complete
// listing of the store's, does not name.
func (r *Repository) pruneCache(kind storage.Kind, live []ID) {
	sub, ok := cacheSubdir(kind)
	if !ok || r.cacheDir == "" {
		return
	}
	keep := make(map[string]bool, len(live))
	for _, id := range live {
		keep[id.String()] = true
	}
	dir := filepath.Join(r.cacheDir, sub)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !keep[e.Name()] {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// RemoveObject deletes an object. Deleting packs, index objects or
// snapshots needs the exclusive lock (docs/design.md, "Writers and
// deleters").
func (r *Repository) RemoveObject(ctx context.Context, kind storage.Kind, id ID) error {
	if err := r.store.Delete(ctx, kind, id.String()); err != nil {
		return fmt.Errorf("removing %s %s: %w", kind, id.Short(), err)
	}
	return nil
}

// ListObjects returns the names of all objects of a kind that are valid
// ids. Other names (foreign files) are ignored. Cached objects of the
// kind that the listing does not name are removed from the cache.
func (r *Repository) ListObjects(ctx context.Context, kind storage.Kind) ([]ID, error) {
	var ids []ID
	err := r.store.List(ctx, kind, func(name string, _ int64) error {
		if id, err := ParseID(name); err == nil {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s objects: %w", kind, err)
	}
	r.pruneCache(kind, ids)
	return ids, nil
}

// LoadBlob reads one blob and returns its verified plaintext.
func (r *Repository) LoadBlob(ctx context.Context, t BlobType, id ID) ([]byte, error) {
	loc, ok := r.index.Lookup(id)
	if !ok {
		return nil, fmt.Errorf("%s blob %s: %w", t, id.Short(), ErrBlobNotFound)
	}
	if loc.Type != t {
		return nil, &IntegrityError{Kind: "blob", Name: id.String(), Pack: loc.Pack.String(), Err: fmt.Errorf("indexed as %s, wanted %s", loc.Type, t)}
	}
	if t == BlobTree {
		open := func(sealed []byte) ([]byte, error) {
			return r.codec.openBlob(make([]byte, 0, loc.RawLength), t, id, sealed)
		}
		if plain := r.trees.load(id, loc, open); plain != nil {
			return plain, nil
		}
	}
	sealed, err := r.readPack(ctx, loc.Pack, int64(loc.Offset), int64(loc.Length))
	if err != nil {
		return nil, err
	}
	plain, err := r.codec.openBlob(make([]byte, 0, loc.RawLength), t, id, sealed)
	if err != nil {
		return nil, &IntegrityError{Kind: "blob", Name: id.String(), Pack: loc.Pack.String(), Err: err}
	}
	if t == BlobTree {
		r.trees.putBlob(id, sealed)
	}
	return plain, nil
}

// readPack reads length bytes at offset of a pack.
func (r *Repository) readPack(ctx context.Context, pack ID, offset, length int64) ([]byte, error) {
	rc, err := r.openPack(ctx, pack, offset, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, length)
	if _, err := io.ReadFull(rc, buf); err != nil {
		if cerr := storeCorrupt(storage.KindPack, pack.String(), err); cerr != nil {
			return nil, cerr
		}
		return nil, fmt.Errorf("reading pack %s at %d+%d: %w", pack.Short(), offset, length, err)
	}
	return buf, nil
}

// openPack returns a reader of length bytes at offset of a pack.
func (r *Repository) openPack(ctx context.Context, pack ID, offset, length int64) (io.ReadCloser, error) {
	rc, err := r.store.Get(ctx, storage.KindPack, pack.String(), &storage.Range{Offset: offset, Length: length})
	if err != nil {
		if errors.Is(err, storage.ErrInvalidRange) {
			return nil, corrupt(storage.KindPack, pack.String(), "truncated: no bytes at %d+%d", offset, length)
		}
		if errors.Is(err, storage.ErrNotFound) {
			return nil, corrupt(storage.KindPack, pack.String(), "missing from the store, but the index lists it")
		}
		if cerr := storeCorrupt(storage.KindPack, pack.String(), err); cerr != nil {
			return nil, cerr
		}
		return nil, fmt.Errorf("reading pack %s: %w", pack.Short(), err)
	}
	return rc, nil
}

// BlobRef names a blob to load with LoadBlobs.
type BlobRef struct {
	ID   ID
	Type BlobType
}

// maxCoalesceGap is the largest run of unwanted bytes LoadBlobs reads
// through rather than issuing another request.
const maxCoalesceGap = 256 << 10

// maxCoalescedRead bounds one coalesced read: large enough that request
// overhead vanishes on a registry, small enough that a read that fails and
// is retried repeats little. Runs are streamed, so it does not bound memory.
const maxCoalescedRead = 16 << 20

// LoadBlobs loads blobs that all live in one pack, reading runs of nearby
// blobs with a single ranged read, and calls fn with each verified
// plaintext in pack order. The plaintext is only valid during the call.
func (r *Repository) LoadBlobs(ctx context.Context, pack ID, blobs []BlobRef, fn func(BlobRef, []byte) error) error {
	return r.loadBlobs(ctx, pack, blobs, nil, false, true, fn)
}

// LoadSealedBlobs reads blobs of one pack with as few ranged reads as
// LoadBlobs, but hands fn each blob as stored, still sealed (encrypted
// and not yet authenticated), in a buffer of its own that fn may keep:
// for a caller that keeps blobs it does not need yet in a cache on disk,
// encrypted, and authenticates each with OpenBlob when it is used.
func (r *Repository) LoadSealedBlobs(ctx context.Context, pack ID, blobs []BlobRef, fn func(BlobRef, []byte) error) error {
	return r.loadBlobs(ctx, pack, blobs, nil, true, false, fn)
}

// OpenBlob authenticates a blob that LoadSealedBlobs handed out, checks
// its id and returns its plaintext, an *IntegrityError if it fails. It
// decrypts in place: sealed no longer holds the ciphertext afterwards,
// and the plaintext may lie in it.
func (r *Repository) OpenBlob(ref BlobRef, sealed []byte) ([]byte, error) {
	loc, ok := r.index.Lookup(ref.ID)
	if !ok {
		return nil, fmt.Errorf("%s blob %s: %w", ref.Type, ref.ID.Short(), ErrBlobNotFound)
	}
	if loc.Type != ref.Type {
		return nil, &IntegrityError{Kind: "blob", Name: ref.ID.String(), Pack: loc.Pack.String(), Err: fmt.Errorf("indexed as %s, wanted %s", loc.Type, ref.Type)}
	}
	plain, _, err := r.codec.openBlobInPlace(ref.Type, ref.ID, sealed, make([]byte, 0, loc.RawLength))
	if err != nil {
		return nil, &IntegrityError{Kind: "blob", Name: ref.ID.String(), Pack: loc.Pack.String(), Err: err}
	}
	return plain, nil
}

// LoadBlobsOwned is LoadBlobs for a caller that keeps the plaintexts (a
// cache): each is a buffer of its own, which fn may keep and nothing
// else writes to, so that keeping it costs no copy.
func (r *Repository) LoadBlobsOwned(ctx context.Context, pack ID, blobs []BlobRef, fn func(BlobRef, []byte) error) error {
	return r.loadBlobs(ctx, pack, blobs, nil, true, true, fn)
}

// loadBlobs is LoadBlobs, calling sealed (when not nil) with each sealed
// blob before it is decrypted in place, and, if owned, handing fn
// buffers that are not reused: plaintexts, or the sealed blobs as stored
// unless open.
func (r *Repository) loadBlobs(ctx context.Context, pack ID, blobs []BlobRef, sealedFn func(BlobRef, []byte), owned, open bool, fn func(BlobRef, []byte) error) error {
	type item struct {
		ref BlobRef
		loc Location
	}
	items := make([]item, 0, len(blobs))
	for _, b := range blobs {
		loc, ok := r.index.Lookup(b.ID)
		if !ok {
			return fmt.Errorf("%s blob %s: %w", b.Type, b.ID.Short(), ErrBlobNotFound)
		}
		if loc.Pack != pack {
			return fmt.Errorf("blob %s is in pack %s, not %s", b.ID.Short(), loc.Pack.Short(), pack.Short())
		}
		items = append(items, item{b, loc})
	}
	sortByOffset(items, func(it item) uint32 { return it.loc.Offset })
	var sealed, plain, scratch []byte
	if open && !owned {
		// One buffer, kept from blob to blob and pack to pack. Grown with
		// slices.Grow for each larger blob, and made anew for each pack,
		// it was cleared and copied over and over: 7% of the CPU time of
		// restoring a 4 GiB file (docs/benchmarks.md).
		if b, ok := r.blobBufs.Get().(*[]byte); ok {
			sealed = *b
		}
		defer func() { r.blobBufs.Put(&sealed) }()
	}
	for start := 0; start < len(items); {
		end := start + 1
		runEnd := int64(items[start].loc.Offset) + int64(items[start].loc.Length)
		for end < len(items) && int64(items[end].loc.Offset)-runEnd <= maxCoalesceGap &&
			int64(items[end].loc.Offset)+int64(items[end].loc.Length)-int64(items[start].loc.Offset) <= maxCoalescedRead {
			runEnd = max(runEnd, int64(items[end].loc.Offset)+int64(items[end].loc.Length))
			end++
		}
		base := int64(items[start].loc.Offset)
		rc, err := r.openPack(ctx, pack, base, runEnd-base)
		if err != nil {
			return err
		}
		// The run is streamed, one sealed blob in memory at a time, so a
		// worker holds two blob buffers, not the whole run.
		run := bufio.NewReaderSize(rc, 256<<10)
		pos := base
		for _, it := range items[start:end] {
			if it.loc.Type != it.ref.Type {
				rc.Close()
				return &IntegrityError{Kind: "blob", Name: it.ref.ID.String(), Pack: pack.String(), Err: fmt.Errorf("indexed as %s, wanted %s", it.loc.Type, it.ref.Type)}
			}
			off := int64(it.loc.Offset)
			if !open && off < pos {
				continue // the same blob again: handed out already
			}
			if !open {
				sealed = nil // fn keeps it
			}
			if off >= pos { // else the same blob again, already in plain
				sealed = resize(sealed, int(it.loc.Length))
				if err := skipAndRead(run, off-pos, sealed); err != nil {
					rc.Close()
					if cerr := storeCorrupt(storage.KindPack, pack.String(), err); cerr != nil {
						return cerr
					}
					return fmt.Errorf("reading pack %s at %d+%d: %w", pack.Short(), off, it.loc.Length, err)
				}
				pos = off + int64(it.loc.Length)
				if sealedFn != nil {
					sealedFn(it.ref, sealed)
				}
				if !open {
					if err := fn(it.ref, sealed); err != nil {
						rc.Close()
						return err
					}
					continue
				}
				if owned {
					scratch = make([]byte, 0, it.loc.RawLength)
				}
				plain, scratch, err = r.codec.openBlobInPlace(it.ref.Type, it.ref.ID, sealed, scratch)
				if err != nil {
					rc.Close()
					return &IntegrityError{Kind: "blob", Name: it.ref.ID.String(), Pack: pack.String(), Err: err}
				}
				if owned && len(scratch) == 0 {
					sealed = nil // not decompressed: plain lies in sealed, and fn keeps it
				}
			}
			if err := fn(it.ref, plain); err != nil {
				rc.Close()
				return err
			}
		}
		rc.Close()
		start = end
	}
	return nil
}

// resize returns b with length n, in a new buffer only when b's capacity
// is short: none of b's bytes are kept, so none are copied.
func resize(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// LoadTrees loads tree blobs: from the tree cache where it holds them,
// and otherwise the misses of each pack together, with as few ranged
// reads as LoadBlobs makes (4 packs at a time), caching what it read. A
// walk that loads a directory level at a time so reads a cold snapshot
// in a request per pack and level rather than one per directory. fn gets
// each tree's plaintext, in no given order and from several goroutines,
// valid during the call only.
func (r *Repository) LoadTrees(ctx context.Context, ids []ID, fn func(ID, []byte) error) error {
	byPack := map[ID][]BlobRef{}
	for _, id := range ids {
		loc, ok := r.index.Lookup(id)
		if !ok {
			return fmt.Errorf("tree blob %s: %w", id.Short(), ErrBlobNotFound)
		}
		if loc.Type != BlobTree {
			return &IntegrityError{Kind: "blob", Name: id.String(), Pack: loc.Pack.String(), Err: fmt.Errorf("indexed as %s, wanted tree", loc.Type)}
		}
		plain := r.trees.load(id, loc, func(sealed []byte) ([]byte, error) {
			return r.codec.openBlob(make([]byte, 0, loc.RawLength), BlobTree, id, sealed)
		})
		if plain != nil {
			if err := fn(id, plain); err != nil {
				return err
			}
			continue
		}
		byPack[loc.Pack] = append(byPack[loc.Pack], BlobRef{Type: BlobTree, ID: id})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for pack, refs := range byPack {
		g.Go(func() error {
			return r.loadBlobs(gctx, pack, refs, func(ref BlobRef, sealed []byte) {
				r.trees.putBlob(ref.ID, sealed) // written before it is decrypted in place
			}, false, true, func(ref BlobRef, plain []byte) error { return fn(ref.ID, plain) })
		})
	}
	return g.Wait()
}

// skipAndRead discards skip bytes of r, then fills buf.
func skipAndRead(r *bufio.Reader, skip int64, buf []byte) error {
	if _, err := r.Discard(int(skip)); err != nil {
		return err
	}
	_, err := io.ReadFull(r, buf)
	return err
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
