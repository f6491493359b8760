package storage

import (
	"bytes"
	"fmt"
	"io"
)

// Body is the bytes of an object to Put: Size bytes read at offsets of an
// io.ReaderAt. It is a ReaderAt rather than a stream so that a store can
// read it again, as a retried upload must, without a guess at run time or
// a copy of the whole object in memory: whether a Put can be repeated is
// settled by the type.
//
// A Body is exactly Size bytes: whatever its ReaderAt holds past them is
// not part of it, and a ReaderAt that ends before them makes a Put that
// reads it fail. The zero Body is empty.
type Body struct {
	r    io.ReaderAt
	size int64
}

// NewBody returns the body of the first size bytes of r. To store a part
// of a file from an offset on, pass an io.NewSectionReader of it. It
// panics if size is negative, which no caller can mean.
func NewBody(r io.ReaderAt, size int64) Body {
	if size < 0 {
		panic(fmt.Sprintf("storage.NewBody: negative size %d", size))
	}
	return Body{r: r, size: size}
}

// BytesBody returns the body of b. The caller must not change b until the
// Put it is passed to returns.
func BytesBody(b []byte) Body {
	return Body{r: bytes.NewReader(b), size: int64(len(b))}
}

// Size returns how many bytes the body is.
func (b Body) Size() int64 { return b.size }

// Reader returns a new reader of the body from its first byte. Readers
// are independent of each other, so a store can hand one to each attempt
// of an upload, or read one part while it uploads another.
func (b Body) Reader() *io.SectionReader {
	r := b.r
	if r == nil {
		r = bytes.NewReader(nil) // the zero Body
	}
	return io.NewSectionReader(r, 0, b.size)
}
