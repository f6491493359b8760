package mount

import (
	"cmp"
	"slices"

	"github.com/cofferhq/coffer/repo"
)

// packBlob is a data blob's place in its pack.
type packBlob struct {
	id     repo.ID
	offset uint32
	length uint32 // sealed, in the pack
	raw    uint32 // plaintext length
}

// packOrder lists each pack's data blobs by offset. A backup stores
// blobs in the order it walks the tree, which is the order tar, cp -r or
// rsync read it, so a fetch that goes on through the blobs after the one
// a read needs fetches what the next reads need, across files and
// directories, with one ranged read: what read-ahead within a file or a
// directory cannot know.
type packOrder map[repo.ID][]packBlob

// newPackOrder builds the lists from the index: about 44 bytes a blob.
func newPackOrder(x *repo.Index) packOrder {
	p := packOrder{}
	x.Each(func(id repo.ID, loc repo.Location) {
		if loc.Type == repo.BlobData {
			p[loc.Pack] = append(p[loc.Pack], packBlob{id: id, offset: loc.Offset, length: loc.Length, raw: loc.RawLength})
		}
	})
	for _, blobs := range p {
		slices.SortFunc(blobs, func(a, b packBlob) int { return cmp.Compare(a.offset, b.offset) })
	}
	return p
}

// after returns the blobs of pack stored after offset.
func (p packOrder) after(pack repo.ID, offset uint32) []packBlob {
	blobs := p[pack]
	i, _ := slices.BinarySearchFunc(blobs, offset, func(b packBlob, off uint32) int { return cmp.Compare(b.offset, off) })
	for i < len(blobs) && blobs[i].offset <= offset {
		i++
	}
	return blobs[i:]
}
