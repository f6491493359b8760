package repo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// PruneOptions tune Prune.
type PruneOptions struct {
	// MaxUnused is the share of the used bytes that may stay unused in
	// packs kept: packs with unused blobs are repacked, most unused
	// first, until the rest is within it. Negative means no limit (never
	// repack); DefaultMaxUnused is 5%, as restic's default.
	MaxUnused float64
	// DryRun computes and reports, and writes nothing.
	DryRun bool
	// MarkUsed calls mark with the id of every blob (trees and data) that
	// a snapshot needs, for the snapshots it has not reported before (an
	// id may come more than once): Prune calls it once to plan, and again
	// before deleting, for snapshots that backups finished in between.
	MarkUsed func(ctx context.Context, mark func(ID)) error
	// Logf receives progress notes; nil discards them.
	Logf func(format string, args ...any)
	// Progress, when not nil, is told of the packs repacked (with their
	// sizes) and deleted, as they are.
	Progress PruneProgress
}

// PruneProgress hears how far a prune is: Total gives (and may raise)
// the packs to repack and delete and the bytes to repack; Processed adds
// what is done.
type PruneProgress interface {
	Total(packs, bytes int64)
	Processed(packs, bytes int64)
}

type nopPruneProgress struct{}

func (nopPruneProgress) Total(int64, int64)     {}
func (nopPruneProgress) Processed(int64, int64) {}

// DefaultMaxUnused is PruneOptions.MaxUnused's usual value.
const DefaultMaxUnused = 0.05

// PruneStats says what Prune found and did (or, with DryRun, would do).
type PruneStats struct {
	Packs       int   `json:"packs"`        // packs the index lists
	PackBytes   int64 `json:"pack_bytes"`   // their stored size
	UsedBytes   int64 `json:"used_bytes"`   // sealed bytes of blobs snapshots need
	UnusedBytes int64 `json:"unused_bytes"` // sealed bytes of other blobs
	Unindexed   int   `json:"unindexed"`    // packs no index lists (interrupted backups)

	DeletePacks int   `json:"delete_packs"` // packs deleted, whole
	DeleteBytes int64 `json:"delete_bytes"`
	RepackPacks int   `json:"repack_packs"` // packs whose used blobs were copied, then deleted
	RepackBytes int64 `json:"repack_bytes"` // their stored size
	CopiedBytes int64 `json:"copied_bytes"` // bytes of packs written by repacking

	// Packs planned but not deleted yet: backups that started before the
	// plan (Blockers) must end first; the next prune deletes them.
	DeferredPacks int        `json:"deferred_packs"`
	DeferredBytes int64      `json:"deferred_bytes"`
	Blockers      []LockInfo `json:"blockers,omitempty"`
	// Spared counts planned packs a snapshot finished meanwhile uses.
	Spared int `json:"spared"`
	// Deleted counts the packs deleted by this run.
	Deleted int `json:"deleted"`
	// FreedBytes is what the store holds less (before a registry's own
	// garbage collection, where that is how space comes back).
	FreedBytes int64 `json:"freed_bytes"`

	// Objects a retention (S3 Object Lock) kept this prune from
	// deleting: packs (no index object lists them any more, or only
	// retained ones do), index objects, and snapshots that forget
	// removed (snapshot.Prune). Nothing is wrong: the first prune after
	// RetainedUntil deletes them (RetainedFrom is the earliest date,
	// when the first of them can go). The dates are absent when
	// nothing was retained.
	RetainedPacks     int        `json:"retained_packs"`
	RetainedBytes     int64      `json:"retained_bytes"`
	RetainedIndex     int        `json:"retained_index"`
	RetainedSnapshots int        `json:"retained_snapshots"`
	RetainedFrom      *time.Time `json:"retained_from,omitempty"`
	RetainedUntil     *time.Time `json:"retained_until,omitempty"`
}

// Retained adds the date of an object a retention kept from being
// deleted to RetainedFrom and RetainedUntil.
func (st *PruneStats) Retained(until time.Time) {
	until = until.UTC()
	if st.RetainedFrom == nil || until.Before(*st.RetainedFrom) {
		st.RetainedFrom = &until
	}
	if st.RetainedUntil == nil || until.After(*st.RetainedUntil) {
		u := until
		st.RetainedUntil = &u
	}
}

// indexObject is one index object and the packs it lists.
type indexObject struct {
	id    ID
	packs []PackInfo
}

// Prune deletes the packs that no snapshot needs and repacks those that
// are mostly unneeded, following the protocol in docs/design.md ("Writers
// and deleters"): it needs the exclusive lock, writes a plan before it
// looks for running backups, deletes at once when there are none, and
// otherwise leaves the plan for the next prune once they have ended.
func (r *Repository) Prune(ctx context.Context, opt PruneOptions) (PruneStats, error) {
	var st PruneStats
	if r.lock == nil || r.lock.info.Kind != LockExclusive {
		return st, errors.New("prune needs the repository's exclusive lock")
	}
	logf := opt.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}

	// Plans whose blockers have all ended can be carried out now. This is
	// decided before reading the snapshots, so that those backups'
	// snapshots are among them.
	plans, err := r.LoadPlans(ctx)
	if err != nil {
		return st, err
	}
	live, err := r.liveLocks(ctx, r.lock.name)
	if err != nil {
		return st, err
	}
	liveNames := map[string]bool{}
	for _, l := range live {
		liveNames[l.Name] = true
	}
	ready := map[ID]bool{}
	for _, p := range plans {
		if p.Complete && !slices.ContainsFunc(p.Blockers, func(b string) bool { return liveNames[b] }) {
			for _, id := range p.Packs {
				ready[id] = true
			}
		}
	}

	// Snapshots of backups that ended since the index was loaded use
	// packs of their own.
	if err := r.refreshIndex(ctx); err != nil {
		return st, err
	}
	nums := r.index.Numbers()
	if nums.Len() > maxPruneBlobs {
		return st, fmt.Errorf("the index holds %d blobs, more than prune can handle (%d)", nums.Len(), maxPruneBlobs)
	}
	used := newClaims(nums)
	if err := opt.MarkUsed(ctx, used.need); err != nil {
		return st, err
	}
	stored := map[ID]int64{}
	if err := r.store.List(ctx, storage.KindPack, func(name string, size int64) error {
		if id, err := ParseID(name); err == nil {
			stored[id] = size
		}
		return nil
	}); err != nil {
		return st, fmt.Errorf("listing packs: %w", err)
	}

	// Each blob a snapshot needs is claimed by the first stored pack that
	// holds it; copies elsewhere count as unused.
	packs := map[ID]*packUse{}
	var order []ID
	if err := r.eachIndexObject(ctx, func(o indexObject) error {
		for _, p := range o.packs {
			if _, ok := packs[p.ID]; ok {
				continue
			}
			size, ok := stored[p.ID]
			if !ok {
				continue // missing: check reports it; nothing to delete
			}
			packs[p.ID] = used.addPack(p.ID, size, p.Entries)
			order = append(order, p.ID)
		}
		return nil
	}); err != nil {
		return st, err
	}
	for _, id := range order {
		pu := packs[id]
		used.claim(pu)
		st.Packs++
		st.PackBytes += pu.size
		st.UsedBytes += pu.used
		st.UnusedBytes += pu.unused
	}
	// Packs no index lists: left by interrupted backups, or by a prune
	// that stopped between rewriting the index and deleting them.
	var orphans []*packUse
	for id, size := range stored {
		if _, ok := packs[id]; ok {
			continue
		}
		st.Unindexed++
		entries, err := r.ReadPackTrailer(ctx, id, size)
		if errors.Is(err, ErrCorrupt) {
			// What it holds cannot be known; check names it.
			logf("pack %s is not indexed and its trailer is damaged; leaving it (%v)", id.Short(), err)
			continue
		}
		if err != nil {
			return st, fmt.Errorf("reading the trailer of unindexed pack %s: %w; prune deleted nothing", id.Short(), err)
		}
		pu := used.addPack(id, size, entries)
		used.claim(pu)
		if pu.used > 0 {
			// A snapshot needs a blob only this unindexed pack has: the
			// index is damaged. Keep the pack; `repair index` lists it.
			logf("pack %s is not indexed but holds blobs snapshots need; keeping it (run `coffer repair index`)", id.Short())
			continue
		}
		orphans = append(orphans, pu)
	}
	if id, ok := used.unclaimed(); ok {
		return st, fmt.Errorf("blob %s, which a snapshot needs, is in no stored pack: %w; prune deleted nothing (run `coffer check`)", id.Short(), ErrBlobNotFound)
	}

	// Whole packs to delete, then packs to repack, most unused first.
	var del, repack []*packUse
	var partial []*packUse
	for _, id := range order {
		switch pu := packs[id]; {
		case pu.used == 0:
			del = append(del, pu)
		case pu.unused > 0:
			partial = append(partial, pu)
		}
	}
	del = append(del, orphans...)
	sort.SliceStable(partial, func(i, j int) bool { return partial[i].unused > partial[j].unused })
	var unusedKept int64
	for _, pu := range partial {
		unusedKept += pu.unused
	}
	// A pack found retained is not repacked before its date: it could
	// not be deleted, and the copy would be retained too.
	known := r.loadRetained()
	for _, pu := range partial {
		if opt.MaxUnused < 0 || float64(unusedKept) <= opt.MaxUnused*float64(st.UsedBytes) {
			break
		}
		if until, ok := known[pu.id]; ok {
			// Its unused blobs stay either way: no other pack is
			// repacked in its stead.
			logf("pack %s is retained until %s: not repacking it before then", pu.id.Short(), until.Format(time.RFC3339))
			unusedKept -= pu.unused
			continue
		}
		repack = append(repack, pu)
		unusedKept -= pu.unused
	}
	inPlan := make(map[*packUse]bool, len(del)+len(repack))
	for _, pu := range del {
		st.DeletePacks++
		st.DeleteBytes += pu.size
		inPlan[pu] = true
	}
	for _, pu := range repack {
		st.RepackPacks++
		st.RepackBytes += pu.size
		inPlan[pu] = true
	}
	// Only the entries of packs to delete or repack are read again
	// (repacking, spare): the others' can go now, before repacking
	// adds what it holds.
	for _, pu := range packs {
		if !inPlan[pu] {
			pu.dropEntries()
		}
	}
	if opt.DryRun {
		// What would go, less what repacking would write again.
		st.FreedBytes = st.DeleteBytes + st.RepackBytes
		for _, pu := range repack {
			st.FreedBytes -= pu.used
		}
		return st, nil
	}
	if len(del)+len(repack) == 0 {
		// Nothing is left to delete: older plans are done or moot.
		if err := r.removePlans(ctx, plans); err != nil {
			return st, err
		}
		return st, r.Compact(ctx)
	}

	var planned []ID
	for _, pu := range append(slices.Clone(del), repack...) {
		planned = append(planned, pu.id)
	}
	prog := opt.Progress
	if prog == nil {
		prog = nopPruneProgress{}
	}
	prog.Total(int64(len(planned)), st.RepackBytes)
	if len(repack) > 0 {
		// Condemned first, so the copies land in new packs.
		r.index.Condemn(planned)
		logf("repacking %d packs", len(repack))
		stats, err := r.WithBlobSaver(ctx, func(ctx context.Context, s *BlobSaver) error {
			for _, pu := range repack {
				refs := used.usedRefs(pu)
				p := PackInfo{ID: pu.id, Size: pu.size, Entries: pu.entries(used.nums)}
				if err := r.loadBlobsFrom(ctx, p, refs, func(ref BlobRef, plain []byte) error {
					_, err := s.SaveWithID(ctx, ref.Type, ref.ID, plain)
					return err
				}); err != nil {
					return fmt.Errorf("repacking pack %s: %w", pu.id.Short(), err)
				}
				prog.Processed(0, pu.size)
			}
			return nil
		})
		if err != nil {
			return st, err
		}
		st.CopiedBytes = stats.PackBytes
		if err := storage.Flush(ctx, r.store); err != nil {
			return st, err
		}
	}

	// The plan goes into the store before the locks are listed: a backup
	// that does not see it has a lock this listing sees.
	if err := r.ReadyToCommit(ctx, nil); err != nil {
		return st, err
	}
	plan := &Plan{Created: r.now().UTC(), Host: r.lock.info.Host, Packs: planned}
	if err := r.savePlan(ctx, plan); err != nil {
		return st, err
	}
	live, err = r.liveLocks(ctx, r.lock.name)
	if err != nil {
		return st, err
	}
	complete := &Plan{Created: plan.Created, Host: plan.Host, Packs: planned, Complete: true}
	for _, l := range live {
		complete.Blockers = append(complete.Blockers, l.Name)
		st.Blockers = append(st.Blockers, l)
	}
	if err := r.savePlan(ctx, complete); err != nil {
		return st, err
	}
	// Older plans are superseded: what of theirs is still unused is in
	// this one, written before they go.
	if err := r.removePlans(ctx, append(plans, plan)); err != nil {
		return st, err
	}

	now := planned
	if len(complete.Blockers) > 0 {
		now = slices.DeleteFunc(slices.Clone(planned), func(id ID) bool { return !ready[id] })
	}
	spared, err := r.spare(ctx, opt, packs, orphans, used, now)
	if err != nil {
		return st, err
	}
	// What the packs hold is not needed any more, and deletePacks reads
	// the index objects again: let the first copy go before that.
	used = nil
	for _, pu := range packs {
		pu.dropEntries()
	}
	st.Spared = len(spared)
	now = slices.DeleteFunc(now, func(id ID) bool { return spared[id] })
	// A prune that lost its lock for long must not delete: another may
	// have taken the lock meanwhile.
	if err := r.ReadyToCommit(ctx, nil); err != nil {
		return st, err
	}
	// What cannot be deleted yet (deferred, spared) is done for now.
	prog.Processed(int64(len(planned)-len(now)), 0)
	sizeOf := func(id ID) int64 {
		if pu, ok := packs[id]; ok {
			return pu.size
		}
		return stored[id]
	}
	deleted, err := r.deletePacks(ctx, now, prog, &st, sizeOf, known)
	if err != nil {
		return st, err
	}
	st.Deleted = len(deleted)
	for _, id := range deleted {
		st.FreedBytes += sizeOf(id)
	}
	for _, id := range planned {
		if !slices.Contains(now, id) && !spared[id] {
			st.DeferredPacks++
			st.DeferredBytes += sizeOf(id)
		}
	}
	st.FreedBytes -= st.CopiedBytes
	if st.DeferredPacks == 0 {
		if err := r.removePlans(ctx, []*Plan{complete}); err != nil {
			return st, err
		}
	}
	// Backups add a refs tag each (on a registry) and never merge them:
	// that is a deletion of what others wrote, which is prune's to do.
	return st, r.Compact(ctx)
}

// loadBlobsFrom reads blobs of one pack by its own entries, not the
// in-memory index (which may point at another copy).
func (r *Repository) loadBlobsFrom(ctx context.Context, p PackInfo, refs []BlobRef, fn func(BlobRef, []byte) error) error {
	x := NewIndex()
	x.Add(p)
	return r.withIndex(x).LoadBlobs(ctx, p.ID, refs, fn)
}

// withIndex returns a view of r that looks blobs up in x.
func (r *Repository) withIndex(x *Index) *Repository {
	c := *r
	c.index = x
	return &c
}

// spare returns the packs among del that snapshots finished since the
// first marking need: blobs they use that no pack claimed then.
func (r *Repository) spare(ctx context.Context, opt PruneOptions, packs map[ID]*packUse, orphans []*packUse, used *claims, del []ID) (map[ID]bool, error) {
	spared := map[ID]bool{}
	if len(del) == 0 {
		return spared, nil
	}
	if err := r.refreshIndex(ctx); err != nil {
		return nil, err
	}
	unclaimed := NewBlobSet(used.nums)
	if err := opt.MarkUsed(ctx, func(id ID) {
		if !used.claimed(id) {
			unclaimed.Add(id)
		}
	}); err != nil {
		return nil, err
	}
	if unclaimed.Len() == 0 {
		return spared, nil
	}
	byID := map[ID]*packUse{}
	for _, pu := range orphans {
		byID[pu.id] = pu
	}
	for _, id := range del {
		pu, ok := packs[id]
		if !ok {
			pu = byID[id]
		}
		if pu != nil && used.holdsAny(pu, unclaimed) {
			spared[id] = true
		}
	}
	return spared, nil
}

// deletePacks removes packs: first from the index (new index objects
// without them, then the objects they replace), then from the store, each
// step visible to all before the next, so that at no point does an index
// object list a deleted pack. It returns the packs it deleted.
//
// A delete that a retention refuses (storage.ErrRetained) is no
// failure: the object stays, counted in st with its date. A replaced
// index object that stays keeps the packs it lists that were to go:
// they are not deleted either. A pack that stays is listed by no index
// object any more: the first prune after its date finds it unindexed
// and unused, and deletes it. Packs that stay are added to known, and
// those deleted removed from it, which is then remembered
// (saveRetained).
func (r *Repository) deletePacks(ctx context.Context, del []ID, prog PruneProgress, st *PruneStats, sizeOf func(ID) int64, known map[ID]time.Time) ([]ID, error) {
	if len(del) == 0 {
		return nil, nil
	}
	gone := map[ID]bool{}
	for _, id := range del {
		gone[id] = true
	}
	// Of the objects replaced, only which packs they list is kept: most
	// of their entries are of packs that go.
	type replacedObject struct {
		id    ID
		packs []ID
	}
	var replaced []replacedObject
	var keep []PackInfo
	kept := map[ID]bool{}
	if err := r.eachIndexObject(ctx, func(o indexObject) error {
		if !slices.ContainsFunc(o.packs, func(p PackInfo) bool { return gone[p.ID] }) {
			return nil
		}
		ro := replacedObject{id: o.id, packs: make([]ID, len(o.packs))}
		for i, p := range o.packs {
			ro.packs[i] = p.ID
			if !gone[p.ID] && !kept[p.ID] {
				kept[p.ID] = true
				keep = append(keep, p)
			}
		}
		replaced = append(replaced, ro)
		return nil
	}); err != nil {
		return nil, err
	}
	for len(keep) > 0 {
		n, entries := 0, 0
		for n < len(keep) && (n == 0 || entries+len(keep[n].Entries) <= maxIndexEntries) {
			entries += len(keep[n].Entries)
			n++
		}
		if err := r.saveIndex(ctx, keep[:n]); err != nil {
			return nil, err
		}
		keep = keep[n:]
	}
	if err := storage.Flush(ctx, r.store); err != nil {
		return nil, err
	}
	// still holds the packs a retained index object keeps listed, with
	// the date it can go.
	still := map[ID]time.Time{}
	for _, o := range replaced {
		err := r.RemoveObject(ctx, storage.KindIndex, o.id)
		if until, ok := storage.RetainedUntil(err); ok {
			st.RetainedIndex++
			st.Retained(until)
			for _, p := range o.packs {
				if gone[p] && until.After(still[p]) {
					still[p] = until
				}
			}
			continue
		}
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
	}
	if err := storage.Flush(ctx, r.store); err != nil {
		return nil, err
	}
	var deleted []ID
	defer func() {
		for _, id := range deleted {
			delete(known, id)
		}
		r.saveRetained(known)
	}()
	retained := func(id ID, until time.Time) {
		known[id] = until
		st.RetainedPacks++
		st.RetainedBytes += sizeOf(id)
		st.Retained(until)
	}
	for _, id := range del {
		if until, ok := still[id]; ok {
			retained(id, until)
			prog.Processed(1, 0)
			continue
		}
		err := r.RemoveObject(ctx, storage.KindPack, id)
		if until, ok := storage.RetainedUntil(err); ok {
			retained(id, until)
			prog.Processed(1, 0)
			continue
		}
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return deleted, err
		}
		deleted = append(deleted, id)
		r.trees.dropPack(id)
		prog.Processed(1, 0)
	}
	return deleted, storage.Flush(ctx, r.store)
}

// removePlans deletes plans that are done or superseded.
func (r *Repository) removePlans(ctx context.Context, plans []*Plan) error {
	for _, p := range plans {
		if err := r.RemoveObject(ctx, storage.KindPlan, p.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return storage.Flush(ctx, r.store)
}

// eachIndexObject reads every index object (from the local cache where
// it has them) and calls fn with each, so that only what fn keeps stays
// in memory.
func (r *Repository) eachIndexObject(ctx context.Context, fn func(indexObject) error) error {
	ids, err := r.ListObjects(ctx, storage.KindIndex)
	if err != nil {
		return err
	}
	for _, id := range ids {
		packs, err := r.loadIndexObject(ctx, id)
		if err != nil {
			return err
		}
		if err := fn(indexObject{id, packs}); err != nil {
			return err
		}
	}
	return nil
}
