package repo

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/zeebo/blake3"
)

const (
	keySize   = 32
	nonceSize = 12 // AES-GCM standard nonce
	tagSize   = 16
	// sealOverhead is what sealing adds to a plaintext.
	sealOverhead = nonceSize + tagSize
)

var errAuth = errors.New("authentication failed")

// masterKeys is the secret key set of a repository. It never leaves the
// process except wrapped in a key object.
type masterKeys struct {
	Encrypt []byte `json:"encrypt"` // AES-256-GCM key for every sealed byte
	MAC     []byte `json:"mac"`     // BLAKE3 key for blob ids
	Chunker []byte `json:"chunker"` // key for the content-defined chunker's gear table
}

func newMasterKeys() (*masterKeys, error) {
	k := &masterKeys{Encrypt: make([]byte, keySize), MAC: make([]byte, keySize), Chunker: make([]byte, keySize)}
	for _, b := range [][]byte{k.Encrypt, k.MAC, k.Chunker} {
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("generating master keys: %w", err)
		}
	}
	return k, nil
}

func (k *masterKeys) valid() bool {
	return len(k.Encrypt) == keySize && len(k.MAC) == keySize && len(k.Chunker) == keySize
}

// crypter seals and opens byte strings and computes blob ids. It is safe
// for concurrent use.
type crypter struct {
	aead    cipher.AEAD
	hashers sync.Pool // of *blake3.Hasher keyed with the MAC key
}

func newCrypter(k *masterKeys) (*crypter, error) {
	if !k.valid() {
		return nil, errors.New("master keys have the wrong length")
	}
	block, err := aes.NewCipher(k.Encrypt)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	c := &crypter{aead: aead}
	macKey := append([]byte(nil), k.MAC...)
	c.hashers.New = func() any {
		h, err := blake3.NewKeyed(macKey)
		if err != nil {
			panic(err) // unreachable: the key length was checked above
		}
		return h
	}
	return c, nil
}

// blobID returns the keyed MAC of the blob type and plaintext. The type
// is part of the MAC so that a tree and a file chunk with equal bytes
// are different blobs: the index is keyed by id alone.
func (c *crypter) blobID(t BlobType, plaintext []byte) ID {
	h := c.hashers.Get().(*blake3.Hasher)
	h.Reset()
	_, _ = h.Write([]byte{byte(t)})
	_, _ = h.Write(plaintext)
	var id ID
	h.Sum(id[:0])
	c.hashers.Put(h)
	return id
}

// seal appends nonce || AES-GCM(plaintext, ad) to dst. The random 96-bit
// nonce keeps the collision probability negligible below 2^32 seals per
// master key (docs/format.md discusses the bound).
func (c *crypter) seal(dst, plaintext, ad []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, nonceSize)...)
	if _, err := rand.Read(dst[start:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return c.aead.Seal(dst, dst[start:start+nonceSize], plaintext, ad)
}

// sealInPlace seals buf[start+nonceSize:] in place, writing a fresh nonce
// into buf[start:start+nonceSize], which the caller reserved; the result is
// the same as seal(buf[:start], buf[start+nonceSize:], ad).
func (c *crypter) sealInPlace(buf []byte, start int, ad []byte) []byte {
	nonce := buf[start : start+nonceSize]
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return c.aead.Seal(buf[:start+nonceSize], nonce, buf[start+nonceSize:], ad)
}

// openInPlace is open decrypting into sealed itself; the plaintext is a
// part of sealed.
func (c *crypter) openInPlace(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < sealOverhead {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the %d-byte envelope", errAuth, len(sealed), sealOverhead)
	}
	ciphertext := sealed[nonceSize:]
	out, err := c.aead.Open(ciphertext[:0], sealed[:nonceSize], ciphertext, ad)
	if err != nil {
		return nil, errAuth
	}
	return out, nil
}

// open authenticates and decrypts a sealed byte string, appending the
// plaintext to dst.
func (c *crypter) open(dst, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < sealOverhead {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the %d-byte envelope", errAuth, len(sealed), sealOverhead)
	}
	out, err := c.aead.Open(dst, sealed[:nonceSize], sealed[nonceSize:], ad)
	if err != nil {
		return nil, errAuth
	}
	return out, nil
}
