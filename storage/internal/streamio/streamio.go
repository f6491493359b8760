// Package streamio copies object bodies for storage backends. It exists so
// that every backend enforces the declared size and honours cancellation in
// the same way, which is what makes Put atomic from the caller's view: a
// backend commits an object only after CopyExact succeeded.
package streamio

import (
	"context"
	"fmt"
	"io"
)

// CopyExact copies exactly size bytes from src to dst.
//
// It fails if src ends before size bytes, if src holds more than size bytes
// (the declared size is then wrong, and the object would not be the one the
// caller named), if reading or writing fails, or if ctx is done before the
// copy completes. Read and context errors are returned unwrapped so callers
// can match them; the caller adds the object's name.
func CopyExact(ctx context.Context, dst io.Writer, src io.Reader, size int64) error {
	if size < 0 {
		return fmt.Errorf("negative size %d", size)
	}
	cr := &ctxReader{ctx: ctx, r: src}
	n, err := io.Copy(dst, io.LimitReader(cr, size))
	if err != nil {
		return err
	}
	if n < size {
		return fmt.Errorf("reader ended after %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
	}
	var extra [1]byte
	m, err := io.ReadAtLeast(cr, extra[:], 1)
	switch {
	case m > 0:
		return fmt.Errorf("reader holds more than the declared %d bytes", size)
	case err == io.EOF:
		return nil
	default:
		return err
	}
}

// ctxReader fails reads once ctx is done, so that a long copy stops soon
// after cancellation instead of running to the end of the reader.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
