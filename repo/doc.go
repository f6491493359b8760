// Package repo implements a coffer repository on top of a storage.Store:
// keys, the config, blob encoding, packs, the index and sealed objects.
//
// # Master keys
//
// A repository has one random set of master keys (an AES-256-GCM key, a
// BLAKE3 MAC key and a chunker key). Each key object wraps that set under a
// key derived from a passphrase with Argon2id, so passphrases can be added,
// changed and removed without re-encrypting any data.
//
// # Blob
//
// A blob is a piece of plaintext: a content chunk of a file (BlobData) or
// an encoded directory (BlobTree). Its ID is the keyed BLAKE3 MAC of the
// plaintext, so equal content is stored once and the store never sees a
// plaintext hash. A blob is zstd-compressed (when that shrinks it) and then
// sealed with AES-256-GCM, its ID and type bound as associated data.
//
// # Pack
//
// A pack is a stored object holding many sealed blobs, random padding and a
// sealed trailer that lists the blobs. It is named by the SHA-256 of its
// bytes, which is also its OCI blob digest.
//
// # Index
//
// The index maps a blob ID to the pack, offset and length holding it. Index
// objects are written by each backup and cached locally; together with the
// pack trailers they are enough to rebuild it.
//
// # Sealed object
//
// Index, snapshot and config objects are sealed whole (compressed, then
// encrypted) and, except the config, named by the SHA-256 of their bytes.
//
// The byte-level format is specified in docs/format.md.
package repo
