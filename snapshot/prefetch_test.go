package snapshot

import (
	"context"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/repo"
)

// Every tree the walk takes is the one asked for, loaded exactly once
// whether a loader got to it first or the walk did, and trees queued but
// never taken stop holding prefetch slots once forgotten.
func TestPrefetcher(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	loads := map[repo.ID]int{}
	load := func(_ context.Context, id repo.ID) (*prevDir, error) {
		mu.Lock()
		loads[id]++
		mu.Unlock()
		return &prevDir{byName: map[string]*Node{id.String(): {Name: id.String()}}}, nil
	}
	p := newPrefetcher(ctx, load)
	defer p.close()
	var ids []repo.ID
	for i := range 100 {
		ids = append(ids, repo.ID{byte(i + 1)})
	}
	p.queue(ids)
	p.queue(ids[:10]) // queued twice: loaded once
	for _, id := range ids[:90] {
		d, err := p.take(ctx, id)
		if err != nil || d.node(id.String()) == nil {
			t.Fatalf("take(%s) returned another tree", id.Short())
		}
	}
	p.forget(ids)
	p.mu.Lock()
	left := len(p.futures)
	p.mu.Unlock()
	if left != 0 {
		t.Errorf("%d trees still held after forget", left)
	}
	// A tree taken again after it was handed out is loaded again.
	if _, err := p.take(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	p.close()
	mu.Lock()
	defer mu.Unlock()
	for i, id := range ids[:90] {
		want := 1
		if i == 0 {
			want = 2
		}
		if loads[id] != want {
			t.Errorf("tree %d loaded %d times, want %d", i, loads[id], want)
		}
	}
}
