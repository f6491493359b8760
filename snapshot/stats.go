package snapshot

import "github.com/cofferhq/coffer/repo"

// Stats is what `coffer info` and the UI's overview report: the index's
// counts (repo.Stats) and what only the snapshots know.
type Stats struct {
	repo.Stats
	Snapshots    int
	LogicalBytes int64 // the snapshots' sizes added up, as if nothing were shared
}

// RepositoryStats counts r's loaded index and the snapshots sns, which
// the caller has listed (the UI keeps its own listing).
func RepositoryStats(r *repo.Repository, sns []*Snapshot) Stats {
	s := Stats{Stats: r.Stats(), Snapshots: len(sns)}
	for _, sn := range sns {
		s.LogicalBytes += sn.Summary.Size
	}
	return s
}

// DedupRatio returns LogicalBytes / UniqueBytes, or 0 when no data is
// stored.
func (s Stats) DedupRatio() float64 {
	if s.UniqueBytes == 0 {
		return 0
	}
	return float64(s.LogicalBytes) / float64(s.UniqueBytes)
}
