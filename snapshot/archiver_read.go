package snapshot

// The readers, the backup's second stage: each reads one file at a time,
// finds its data regions, cuts them into content-defined chunks and hands
// the chunks to the blob workers.

import (
	"bytes"
	"context"
	"io"
	"os"
)

// readFiles is a reader: it chunks files and hands the chunks on.
func (a *archiver) readFiles(ctx context.Context) error {
	for job := range a.fileCh {
		if err := a.readFile(ctx, job); err != nil {
			return err
		}
	}
	return nil
}

// readFile reads one file and hands its chunks on. It returns only the
// errors that stop the backup: a file that cannot be read is a warning,
// and recorded in its node.
func (a *archiver) readFile(ctx context.Context, job *fileJob) error {
	job.remaining.Store(1)
	err := a.readContent(ctx, job)
	a.prog.Processed(1, 0)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Chunks already handed on still write into job.content, so it
		// is dropped only when the file completes.
		a.warn(job.path, job.node, err)
	}
	return job.release(ctx, a)
}

// readContent opens job's file and hands its chunks on.
func (a *archiver) readContent(ctx context.Context, job *fileJob) error {
	n := job.node
	f, err := openNoAtime(job.path)
	if err != nil {
		return err
	}
	defer f.Close()
	a.filesRead.Add(1)
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	n.Size = fi.Size()
	if n.Size == 0 {
		// Files of procfs, sysfs and FUSE often have a stat size of 0 but
		// content when read: read to EOF and store what was read (an
		// empty file costs one read).
		read, err := a.readToEOF(ctx, job, f)
		if err != nil {
			return err
		}
		a.bytesRead.Add(read)
		return nil
	}
	regions := []region{{0, n.Size}}
	if !dense(fi) {
		if regions, err = dataRegions(f, n.Size); err != nil {
			return err
		}
	}
	var pos int64
	for _, reg := range regions {
		if reg.Off > pos {
			job.addExtent(Extent{Hole: true, Size: reg.Off - pos})
		}
		var read int64
		if reg.Len <= int64(a.chunk.MinSize) {
			// FastCDC never cuts a region this short: it is one chunk,
			// read whole.
			read, err = a.readWhole(ctx, job, f, reg)
		} else {
			read, err = a.chunkRegion(ctx, job, f, reg)
		}
		if err != nil {
			return err
		}
		a.bytesRead.Add(read)
		pos = reg.Off + read
	}
	if pos < n.Size {
		job.addExtent(Extent{Hole: true, Size: n.Size - pos})
	}
	return nil
}

// readToEOF reads a file of unknown length (or standard input) from its
// current offset to EOF and hands its chunks on, as they would be cut had
// its size been known, and returns how many bytes it read. It holds no
// more of f than the chunk being cut.
func (a *archiver) readToEOF(ctx context.Context, job *fileJob, f io.Reader) (int64, error) {
	// Up to MinSize bytes are one chunk, which needs no chunker.
	b := a.getBuf(a.chunk.MinSize + 1)
	n, err := io.ReadFull(f, *b)
	switch {
	case err == io.EOF:
		a.bufs.Put(b)
		return 0, nil
	case err == io.ErrUnexpectedEOF:
		return int64(n), a.sendChunk(ctx, job, b, n)
	case err != nil:
		a.bufs.Put(b)
		return int64(n), err
	}
	defer a.bufs.Put(b)
	return a.chunkStream(ctx, job, io.MultiReader(bytes.NewReader((*b)[:n]), f))
}

// chunkRegion cuts a data region into chunks and hands them on, and
// returns how many bytes it read.
func (a *archiver) chunkRegion(ctx context.Context, job *fileJob, f *os.File, reg region) (int64, error) {
	return a.chunkStream(ctx, job, io.NewSectionReader(f, reg.Off, reg.Len))
}

// chunkStream cuts r into chunks and hands them on, and returns how many
// bytes it read.
func (a *archiver) chunkStream(ctx context.Context, job *fileJob, r io.Reader) (int64, error) {
	return a.cutter.split(r, a.getBuf, func(b *[]byte) { a.bufs.Put(b) }, func(b *[]byte, n int) error {
		return a.sendChunk(ctx, job, b, n)
	})
}

// readWhole reads a data region as one chunk and hands it on. A file that
// shrank since it was examined gives a shorter chunk, as the chunker would.
func (a *archiver) readWhole(ctx context.Context, job *fileJob, f *os.File, reg region) (int64, error) {
	b := a.getBuf(int(reg.Len))
	n, err := io.ReadFull(io.NewSectionReader(f, reg.Off, reg.Len), *b)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		a.bufs.Put(b)
		return int64(n), err
	}
	if n == 0 {
		a.bufs.Put(b)
		return 0, nil
	}
	return int64(n), a.sendChunk(ctx, job, b, n)
}

// sendChunk records the next extent of job and hands its bytes, (*b)[:n],
// to the blob workers. A chunk larger than a pack of the backup's pack
// size holds is sent as consecutive pieces that fit, each an extent.
func (a *archiver) sendChunk(ctx context.Context, job *fileJob, b *[]byte, n int) error {
	// Progress moves a chunk at a time, so that a large file shows its
	// bytes as they are read, not once it is whole.
	a.prog.Processed(0, int64(n))
	if n <= a.maxBlob {
		return a.sendExtent(ctx, job, b, n)
	}
	// The later pieces are copied out first: the workers return b to the
	// pool once its piece is saved.
	var pieces []*[]byte
	for off := a.maxBlob; off < n; off += a.maxBlob {
		p := a.getBuf(min(a.maxBlob, n-off))
		copy(*p, (*b)[off:])
		pieces = append(pieces, p)
	}
	if err := a.sendExtent(ctx, job, b, a.maxBlob); err != nil {
		return err
	}
	for _, p := range pieces {
		if err := a.sendExtent(ctx, job, p, len(*p)); err != nil {
			return err
		}
	}
	return nil
}

// sendExtent records the next extent of job and hands its bytes, (*b)[:n],
// to the blob workers.
func (a *archiver) sendExtent(ctx context.Context, job *fileJob, b *[]byte, n int) error {
	idx := job.addExtent(Extent{Size: int64(n)})
	job.remaining.Add(1)
	select {
	case a.blobCh <- blobJob{file: job, idx: idx, buf: b, n: n}:
		return nil
	case <-ctx.Done():
		job.remaining.Add(-1)
		return ctx.Err()
	}
}

// getBuf returns a pooled buffer of n bytes.
func (a *archiver) getBuf(n int) *[]byte {
	if b, ok := a.bufs.Get().(*[]byte); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, max(n, a.cutter.bufSize))
	return &b
}
