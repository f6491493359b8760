package repo

// Stats counts what a repository's index holds: the figures `coffer info`
// and the UI's overview show, computed here once so that they agree.
type Stats struct {
	Packs       int   // packs the index lists
	StoredBytes int64 // their stored size, padding and trailers included
	DataBlobs   int   // data blobs, each counted once however often it is used
	TreeBlobs   int   // tree blobs
	UniqueBytes int64 // plaintext size of the data blobs, each counted once
}

// CompressionRatio returns UniqueBytes / StoredBytes, or 0 for an empty
// repository.
func (s Stats) CompressionRatio() float64 { return ratio(s.UniqueBytes, s.StoredBytes) }

// Stats counts the packs and blobs of the loaded index (LoadIndex).
func (r *Repository) Stats() Stats {
	var s Stats
	r.Index().Packs(func(_ ID, size int64) {
		s.Packs++
		s.StoredBytes += size
	})
	r.Index().Each(func(_ ID, loc Location) {
		if loc.Type == BlobData {
			s.DataBlobs++
			s.UniqueBytes += int64(loc.RawLength)
		} else {
			s.TreeBlobs++
		}
	})
	return s
}

// ratio returns a/b, or 0 when b is 0, which a ratio of sizes of an empty
// repository would otherwise divide by.
func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
