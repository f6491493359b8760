package repo

import (
	"encoding/hex"
	"fmt"
)

// ID identifies a blob: the keyed BLAKE3 MAC of its plaintext. It is also
// used for pack, index and snapshot names, which are the SHA-256 of the
// object's stored bytes.
type ID [32]byte

// String returns the lowercase hex form of id.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 hex characters, the form shown to users.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// IsZero reports whether id is the zero ID (no blob).
func (id ID) IsZero() bool { return id == ID{} }

// MarshalText encodes id as hex, so IDs read naturally in JSON.
func (id ID) MarshalText() ([]byte, error) {
	out := make([]byte, hex.EncodedLen(len(id)))
	hex.Encode(out, id[:])
	return out, nil
}

// UnmarshalText decodes a 64-character hex id.
func (id *ID) UnmarshalText(b []byte) error {
	parsed, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}

// ParseID decodes a 64-character lowercase hex id.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != hex.EncodedLen(len(id)) {
		return id, fmt.Errorf("id %q: want %d hex characters, got %d", s, hex.EncodedLen(len(id)), len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("id %q: %w", s, err)
	}
	return id, nil
}
