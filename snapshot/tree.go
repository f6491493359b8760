package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"math"
	"slices"
	"strings"

	"github.com/cofferhq/coffer/repo"
)

const treeVersion = 1

// maxTreeNodes is the most nodes one tree blob holds. A larger directory
// is stored as parts, each a tree blob of consecutive nodes, listed in
// order by a parent tree blob; a 10,000-entry directory is then read in a
// few bounded pieces instead of one huge blob.
const maxTreeNodes = 4096

// treeBlob is the encoded form of a tree blob: either Nodes, sorted by
// name, or Parts.
type treeBlob struct {
	Version int       `json:"version"`
	Nodes   []*Node   `json:"nodes,omitempty"`
	Parts   []repo.ID `json:"parts,omitempty"`
}

type blobSaver interface {
	Save(ctx context.Context, t repo.BlobType, plaintext []byte) (repo.ID, bool, error)
}

// BlobLoader is what reading trees and files needs from a repository:
// *repo.Repository has it, and the UI passes a cache in front of one.
type BlobLoader interface {
	// LoadBlob returns the plaintext of blob id of type t, authenticated.
	LoadBlob(ctx context.Context, t repo.BlobType, id repo.ID) ([]byte, error)
}

// saveTree stores a directory's nodes, sorted by name, and returns the
// id of its tree blob.
func saveTree(ctx context.Context, s blobSaver, nodes []*Node) (repo.ID, error) {
	slices.SortFunc(nodes, func(a, b *Node) int { return strings.Compare(a.Name, b.Name) })
	// Parts also fit a pack of the backup's pack size, when it is small;
	// a node larger than that alone still makes a part, in a pack of its
	// own that is larger than the pack size.
	limit := maxTreePartBytes
	if m, ok := s.(interface{ MaxBlob() int }); ok {
		limit = min(limit, m.MaxBlob())
	}
	var chunks [][]*Node
	start, bytes := 0, 0
	for i, n := range nodes {
		size := encodedSizeBound(n)
		if i > start && (i-start == maxTreeNodes || bytes+size > limit) {
			chunks = append(chunks, nodes[start:i])
			start, bytes = i, 0
		}
		bytes += size
	}
	chunks = append(chunks, nodes[start:])
	if len(chunks) == 1 {
		return saveTreeBlob(ctx, s, treeBlob{Version: treeVersion, Nodes: nodes})
	}
	var parts []repo.ID
	for _, chunk := range chunks {
		id, err := saveTreeBlob(ctx, s, treeBlob{Version: treeVersion, Nodes: chunk})
		if err != nil {
			return repo.ID{}, err
		}
		parts = append(parts, id)
	}
	return saveTreeBlob(ctx, s, treeBlob{Version: treeVersion, Parts: parts})
}

// maxTreePartBytes bounds the encoded size of one tree blob, far below
// repo.MaxBlobSize, so that a directory of files with long content lists
// is split too.
const maxTreePartBytes = 8 << 20

// encodedSizeBound over-estimates a node's JSON size without encoding it.
func encodedSizeBound(n *Node) int {
	size := 512 + 2*(len(n.Name)+len(n.LinkTarget)+len(n.User)+len(n.Group)+len(n.Error)) + 100*len(n.Content)
	for _, x := range n.Xattrs {
		size += 64 + 2*len(x.Name) + 2*len(x.Value)
	}
	return size
}

func saveTreeBlob(ctx context.Context, s blobSaver, tb treeBlob) (repo.ID, error) {
	b, err := encodeTree(tb)
	if err != nil {
		return repo.ID{}, err
	}
	id, _, err := s.Save(ctx, repo.BlobTree, b)
	return id, err
}

// LoadTree returns the nodes of a directory, sorted by name.
func LoadTree(ctx context.Context, r BlobLoader, id repo.ID) ([]*Node, error) {
	nodes, _, err := loadTreeParts(ctx, r, id)
	return nodes, err
}

// loadTreeParts is LoadTree that also returns the ids of the parts a
// large directory's tree is stored in (none for most).
func loadTreeParts(ctx context.Context, r BlobLoader, id repo.ID) ([]*Node, []repo.ID, error) {
	tb, err := loadTreeBlob(ctx, r, id)
	if err != nil {
		return nil, nil, err
	}
	if len(tb.Parts) == 0 {
		return tb.Nodes, nil, nil
	}
	var nodes []*Node
	for _, part := range tb.Parts {
		pb, err := loadTreeBlob(ctx, r, part)
		if err != nil {
			return nil, nil, err
		}
		if len(pb.Parts) > 0 {
			return nil, nil, &repo.IntegrityError{Kind: "tree", Name: part.String(), Err: errors.New("a tree part has parts of its own")}
		}
		nodes = append(nodes, pb.Nodes...)
	}
	for i := 1; i < len(nodes); i++ {
		if nodes[i-1].Name >= nodes[i].Name {
			return nil, nil, &repo.IntegrityError{Kind: "tree", Name: id.String(), Err: fmt.Errorf("parts repeat or misorder %q", nodes[i].Name)}
		}
	}
	return nodes, tb.Parts, nil
}

func loadTreeBlob(ctx context.Context, r BlobLoader, id repo.ID) (*treeBlob, error) {
	b, err := r.LoadBlob(ctx, repo.BlobTree, id)
	if err != nil {
		return nil, err
	}
	tb, err := decodeTree(b)
	if err != nil {
		if errors.Is(err, repo.ErrNewerFormat) {
			return nil, fmt.Errorf("tree %s: %w", id.Short(), err)
		}
		return nil, &repo.IntegrityError{Kind: "tree", Name: id.String(), Err: err}
	}
	return tb, nil
}

// treeWireValue is treeBlob as decoded. Its nodes have no JSON methods
// of their own, so a tree is decoded with one scan, not once more per node
// by Node's methods; the bytes are the same either way
// (TestTreeEncodingMatchesNodeMethods).
type treeWireValue struct {
	Version int             `json:"version"`
	Nodes   []nodeWireValue `json:"nodes,omitempty"`
	Parts   []repo.ID       `json:"parts,omitempty"`
}

// encodeTree encodes a tree blob, as json.Marshal encodes it through
// Node's methods (see appendTree).
func encodeTree(tb treeBlob) ([]byte, error) {
	return appendTree(make([]byte, 0, 64+256*len(tb.Nodes)+66*len(tb.Parts)), tb)
}

// decodeTree parses and validates a tree blob.
func decodeTree(b []byte) (*treeBlob, error) {
	w, ok := decodeTreeFast(b)
	if !ok {
		var err error
		if w, err = decodeTreeGeneric(b); err != nil {
			return nil, fmt.Errorf("decoding: %w", err)
		}
	}
	tb := treeBlob{Version: w.Version, Parts: w.Parts}
	if len(w.Nodes) > 0 {
		tb.Nodes = make([]*Node, len(w.Nodes))
		for i := range w.Nodes {
			tb.Nodes[i] = w.Nodes[i].node()
		}
	}
	if tb.Version > treeVersion {
		return nil, fmt.Errorf("tree version %d: %w", tb.Version, repo.ErrNewerFormat)
	}
	if tb.Version != treeVersion {
		return nil, fmt.Errorf("unknown tree version %d", tb.Version)
	}
	if len(tb.Nodes) > 0 && len(tb.Parts) > 0 {
		return nil, errors.New("tree has both nodes and parts")
	}
	for i, n := range tb.Nodes {
		if err := n.validate(); err != nil {
			return nil, fmt.Errorf("node %q: %w", n.Name, err)
		}
		if i > 0 && tb.Nodes[i-1].Name >= n.Name {
			return nil, fmt.Errorf("nodes %q and %q are duplicated or out of order", tb.Nodes[i-1].Name, n.Name)
		}
	}
	return &tb, nil
}

// decodeTreeGeneric decodes any JSON encoding/json could read into a
// tree blob; decodeTreeFast hands it what it does not take itself.
func decodeTreeGeneric(b []byte) (treeWireValue, error) {
	var w treeWireValue
	// Unmarshal appends to a slice that has room, so sizing it first
	// saves growing it step by step: that growth was half of what
	// reading the trees of 300,000 files allocated. Every node has one
	// "mode" key, which no string, escaped, can contain; a miscount costs
	// memory or an append, never a wrong result.
	w.Nodes = make([]nodeWireValue, 0, min(bytes.Count(b, []byte(`"mode":`)), maxTreeNodes))
	err := jsonv2.Unmarshal(b, &w, jsonv1.DefaultOptionsV1())
	if len(w.Nodes) == 0 {
		w.Nodes = nil
	}
	return w, err
}

// validate rejects nodes a restore could be tricked by: names that are
// not a single path element, and content that contradicts the size.
func (n *Node) validate() error {
	if n.Name == "" || n.Name == "." || n.Name == ".." || strings.ContainsAny(n.Name, "/\x00") {
		return errors.New("invalid name")
	}
	switch n.Type {
	case TypeFile:
		if n.Size < 0 {
			return errors.New("negative size")
		}
		var total int64
		for _, e := range n.Content {
			if e.Size < 0 || (!e.Hole && e.ID.IsZero()) || total > math.MaxInt64-e.Size {
				return errors.New("invalid content extent")
			}
			total += e.Size
		}
		if total != n.Size && n.Error == "" {
			return fmt.Errorf("content adds up to %d bytes, size says %d", total, n.Size)
		}
	case TypeDir:
		if n.Subtree.IsZero() {
			return errors.New("directory without a subtree")
		}
	case TypeSymlink, TypeFifo, TypeSocket, TypeCharDev, TypeBlkDev:
	default:
		return fmt.Errorf("unknown type %q", n.Type)
	}
	if n.Type != TypeFile && len(n.Content) > 0 {
		return errors.New("content on a node that is not a file")
	}
	return nil
}
