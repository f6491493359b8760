package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cofferhq/coffer/storage"
)

const planVersion = 1

// Plan lists the packs a prune will delete. Writers that see it reuse
// nothing from them; it is carried out once the backups that may not have
// seen it (its blockers) have ended (docs/design.md, "Writers and
// deleters").
type Plan struct {
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	Host    string    `json:"host"`
	Packs   []ID      `json:"packs"`
	// Complete is set once Blockers is known. A plan left incomplete by a
	// prune that died is superseded by the next prune's.
	Complete bool `json:"complete"`
	// Blockers are the locks that were live when the plan was written.
	Blockers []string `json:"blockers,omitempty"`

	ID ID `json:"-"` // the plan object's name
}

// savePlan stores a plan and makes it visible to every client.
func (r *Repository) savePlan(ctx context.Context, p *Plan) error {
	p.Version = planVersion
	id, err := r.SaveObject(ctx, storage.KindPlan, mustJSON(p))
	if err != nil {
		return err
	}
	p.ID = id
	return storage.Flush(ctx, r.store)
}

// LoadPlans reads every prune plan, as they are now: not from a listing
// kept from before this process's lock was written.
func (r *Repository) LoadPlans(ctx context.Context) ([]*Plan, error) {
	return r.loadPlans(ctx, true)
}

// loadPlans reads every prune plan, from a listing read afresh if
// refresh is set, else from the one the store may hold.
func (r *Repository) loadPlans(ctx context.Context, refresh bool) ([]*Plan, error) {
	if refresh {
		storage.Refresh(r.store)
	}
	ids, err := r.ListObjects(ctx, storage.KindPlan)
	if err != nil {
		return nil, err
	}
	plans := make([]*Plan, 0, len(ids))
	for _, id := range ids {
		b, err := r.LoadObject(ctx, storage.KindPlan, id)
		if errors.Is(err, storage.ErrNotFound) && !errors.Is(err, ErrCorrupt) {
			continue // carried out since the listing
		}
		if err != nil {
			return nil, err
		}
		var p Plan
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, corrupt(storage.KindPlan, id.String(), "decoding: %v", err)
		}
		if p.Version > planVersion {
			return nil, fmt.Errorf("plan %s has version %d: %w", id.Short(), p.Version, ErrNewerFormat)
		}
		p.ID = id
		plans = append(plans, &p)
	}
	return plans, nil
}
