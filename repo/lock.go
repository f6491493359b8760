package repo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"sync"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// Locks say who is working on a repository. They need no atomic create
// and no compare-and-swap (registries have neither): each process writes
// a lock object of its own, under a random name, and only then lists the
// others. Of two processes doing this at once, at least one sees the
// other's lock, which is all the protocol in docs/design.md ("Writers and
// deleters") needs:
//
//   - backups hold shared locks and never wait;
//   - forget and prune hold exclusive locks: one at a time. Only they
//     delete, and only they merge the store's references.

// LockKind says what a lock's holder does to the repository.
type LockKind string

// Lock kinds.
const (
	// LockShared is held by commands that only add (backup).
	LockShared LockKind = "shared"
	// LockExclusive is held by commands that drop references or delete
	// data (forget, prune); one at a time.
	LockExclusive LockKind = "exclusive"
)

// ErrLocked means another process holds an exclusive lock.
var ErrLocked = errors.New("the repository is locked by another process")

// Lock timing. A holder rewrites its lock every LockRefresh; a lock not
// rewritten for LockStale is stale (its holder died on another machine,
// or lost the store for that long). The margin between them absorbs
// clock skew between machines of up to LockStale/2.
const (
	LockRefresh = 5 * time.Minute
	LockStale   = 30 * time.Minute
)

const lockVersion = 1

// LockInfo is the content of a lock object.
type LockInfo struct {
	Version int      `json:"version"`
	Kind    LockKind `json:"kind"`
	Command string   `json:"command"`
	Host    string   `json:"host"`
	User    string   `json:"user"`
	PID     int      `json:"pid"`
	// BootID, PIDNS and ProcStart tell, on the machine (and in the PID
	// namespace) that wrote the lock, a live holder from a dead one whose
	// PID was reused. A cloned VM has booted on its own, so its boot id
	// differs; containers on one host share the boot id but not the PID
	// namespace.
	BootID    string    `json:"boot_id,omitempty"`
	PIDNS     string    `json:"pid_ns,omitempty"`
	ProcStart string    `json:"proc_start,omitempty"`
	Started   time.Time `json:"started"`
	Refreshed time.Time `json:"refreshed"`

	Name string `json:"-"` // the lock object's name
}

// String describes the holder for messages.
func (i LockInfo) String() string {
	return fmt.Sprintf("%s lock of `%s` by %s@%s (pid %d) since %s", i.Kind, i.Command, i.User, i.Host, i.PID,
		i.Started.UTC().Format(time.RFC3339))
}

// Lock is a lock this process holds. It is rewritten every LockRefresh
// until Unlock.
type Lock struct {
	r    *Repository
	name string

	// writeMu makes each write one step, from reading info to the
	// store's answer, so that writes land in the order they were made.
	writeMu sync.Mutex
	mu      sync.Mutex
	info    LockInfo
	lastOK  time.Time // when the lock was last written successfully
	// lapsed is set once the lock went unwritten for longer than
	// LockStale/2: from then on, others may have taken it for stale.
	lapsed bool

	stop chan struct{}
	done chan struct{}
}

// processIdentity is what a lock records about its holder.
type processIdentity struct {
	host, user, bootID, pidNS, procStart string
	pid                                  int
}

func thisProcess() processIdentity {
	p := processIdentity{pid: os.Getpid()}
	p.host, _ = os.Hostname()
	if u, err := user.Current(); err == nil {
		p.user = u.Username
	}
	p.bootID = bootID()
	p.pidNS = pidNamespace()
	p.procStart = procStart(p.pid)
	return p
}

// Lock takes a lock of the given kind for command. An exclusive lock
// fails with ErrLocked while another process holds one.
func (r *Repository) Lock(ctx context.Context, kind LockKind, command string) (*Lock, error) {
	var name [16]byte
	if _, err := rand.Read(name[:]); err != nil {
		return nil, err
	}
	p := thisProcess()
	now := r.now()
	l := &Lock{r: r, name: hex.EncodeToString(name[:]), info: LockInfo{
		Version: lockVersion, Kind: kind, Command: command, Host: p.host, User: p.user, PID: p.pid,
		BootID: p.bootID, PIDNS: p.pidNS, ProcStart: p.procStart, Started: now, Refreshed: now,
	}}
	if err := l.write(ctx); err != nil {
		return nil, fmt.Errorf("writing a lock: %w", err)
	}
	// Refreshed from now on, also while it waits for merges to end.
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go l.refresh()
	if kind == LockExclusive {
		if err := l.exclude(ctx); err != nil {
			l.Unlock()
			return nil, err
		}
	}
	r.lock = l
	return l, nil
}

// exclude fails if another exclusive lock is live.
func (l *Lock) exclude(ctx context.Context) error {
	others, err := l.r.liveLocks(ctx, l.name)
	if err != nil {
		return err
	}
	for _, o := range others {
		if o.Kind == LockExclusive {
			return fmt.Errorf("%w: %s; wait for it to finish, or if it is gone, run `coffer unlock` (a lock is stale after %s without refresh)",
				ErrLocked, o, LockStale)
		}
	}
	return nil
}

// Expired reports whether the lock went unrefreshed, at any time since
// it was taken, for long enough that another process may have taken it
// for stale.
func (l *Lock) Expired() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lapsed || l.gap(l.r.now())
}

// gap reports whether the lock has gone unwritten for LockStale/2. Wall-
// clock time, not monotonic: a suspended machine's monotonic clock stops,
// but others' clocks do not. Called with l.mu held.
func (l *Lock) gap(now time.Time) bool {
	return !l.lastOK.IsZero() && now.Round(0).Sub(l.lastOK.Round(0)) > LockStale/2
}

// Unlock stops refreshing the lock and removes it.
func (l *Lock) Unlock() error {
	if l.stop != nil {
		close(l.stop)
		<-l.done
		l.stop = nil
	}
	if l.r.lock == l {
		l.r.lock = nil
	}
	return l.remove()
}

// remove deletes the lock object, with a context of its own: it runs when
// the command's context may be cancelled (Ctrl-C).
func (l *Lock) remove() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.r.store.Delete(ctx, storage.KindLock, l.name); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("removing lock %s: %w", l.name[:8], err)
	}
	return nil
}

func (l *Lock) refresh() {
	defer close(l.done)
	t := time.NewTicker(l.r.lockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), LockRefresh)
			_ = l.write(ctx) // a failure shows in Expired
			cancel()
		}
	}
}

// write stores the lock with a new refresh time.
func (l *Lock) write(ctx context.Context) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.mu.Lock()
	now := l.r.now()
	l.info.Refreshed = now
	b := mustJSON(l.info)
	l.mu.Unlock()
	sealed, err := l.r.sealObject(storage.KindLock, b)
	if err != nil {
		return err
	}
	if err := l.r.store.Put(ctx, storage.KindLock, l.name, storage.BytesBody(sealed)); err != nil {
		return err
	}
	l.mu.Lock()
	l.lapsed = l.lapsed || l.gap(now)
	l.lastOK = now
	l.mu.Unlock()
	return nil
}

// ErrLockLapsed means a writer's lock went unrefreshed long enough for a
// prune to take it for stale, and a prune ran since: what the writer
// reuses may be gone, so it must not commit.
var ErrLockLapsed = errors.New("this process's lock lapsed while a prune ran")

// ReadyToCommit is called by a writer before it makes its work visible:
// before it writes the index objects listing packs (which are given), and
// before it writes its snapshot. The packs it wrote or adopted must still
// be there: only a prune that took this process for dead could have
// deleted them. If its lock lapsed (Expired), a prune may also have left
// it out of a plan's blockers, so it rewrites its lock and checks that no
// plan it did not see at the start exists and that every index object it
// read is still there (a prune that deleted packs replaced the index
// objects listing them). Otherwise it fails with ErrLockLapsed, and
// nothing that refers to what may be gone is written.
func (r *Repository) ReadyToCommit(ctx context.Context, packs []ID) error {
	if r.lock == nil {
		return nil
	}
	fail := fmt.Errorf("%w: it was not refreshed for over %s (store unreachable, or the machine suspended), and a prune has run since this command started; nothing was saved: run it again (what it uploaded is reused)",
		ErrLockLapsed, LockStale/2)
	lapsed := r.lock.Expired()
	if lapsed {
		if r.lock.info.Kind == LockExclusive {
			return fmt.Errorf("%w: this %s's exclusive lock went unrefreshed for over %s, so another may have taken it; stopped before changing more: run it again",
				ErrLockLapsed, r.lock.info.Command, LockStale/2)
		}
		if err := r.lock.write(ctx); err != nil {
			return fmt.Errorf("renewing this process's lock: %w", err)
		}
	}
	storage.Refresh(r.store)
	for _, p := range packs {
		if _, err := r.store.Stat(ctx, storage.KindPack, p.String()); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("pack %s, which this process wrote or adopted, is gone: %w", p.Short(), fail)
			}
			return err
		}
	}
	if !lapsed {
		return nil
	}
	plans, err := r.LoadPlans(ctx)
	if err != nil {
		return err
	}
	for _, p := range plans {
		if !r.plansSeen[p.ID] {
			return fail
		}
	}
	ids, err := r.ListObjects(ctx, storage.KindIndex)
	if err != nil {
		return err
	}
	now := make(map[ID]bool, len(ids))
	for _, id := range ids {
		now[id] = true
	}
	for _, id := range r.indexLoaded {
		if !now[id] {
			return fail
		}
	}
	return nil
}

// Locks returns every lock in the repository, live or not, and how many
// lock objects could not be read.
func (r *Repository) Locks(ctx context.Context) ([]LockInfo, int, error) {
	var names []string
	if err := r.store.List(ctx, storage.KindLock, func(name string, _ int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		return nil, 0, fmt.Errorf("listing locks: %w", err)
	}
	var locks []LockInfo
	bad := 0
	for _, name := range names {
		sealed, err := readAll(ctx, r.store, storage.KindLock, name, maxObjectSize)
		if errors.Is(err, storage.ErrNotFound) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, 0, err
		}
		plain, err := r.openObject(storage.KindLock, name, sealed)
		var info LockInfo
		if err == nil {
			err = json.Unmarshal(plain, &info)
		}
		if err != nil {
			bad++
			continue
		}
		info.Name = name
		locks = append(locks, info)
	}
	return locks, bad, nil
}

// liveLocks returns the live locks other than the one named self.
func (r *Repository) liveLocks(ctx context.Context, self string) ([]LockInfo, error) {
	all, _, err := r.Locks(ctx)
	if err != nil {
		return nil, err
	}
	me := thisProcess()
	now := r.now()
	return slices.DeleteFunc(all, func(i LockInfo) bool { return i.Name == self || !i.live(now, me) }), nil
}

// live reports whether the lock's holder may still be working. Where this
// process can see the holder's process (same boot, same PID namespace,
// same user, so that /proc hides nothing), whether that process still
// runs; elsewhere, whether the lock was refreshed within LockStale.
func (i LockInfo) live(now time.Time, me processIdentity) bool {
	if i.BootID != "" && i.BootID == me.bootID && i.PIDNS != "" && i.PIDNS == me.pidNS && i.User == me.user {
		return i.ProcStart != "" && procStart(i.PID) == i.ProcStart
	}
	return now.Sub(i.Refreshed) < LockStale
}

// RemoveLocks removes stale locks, or every lock with all, and returns
// how many it removed. Lock objects that cannot be read count as stale.
func (r *Repository) RemoveLocks(ctx context.Context, all bool) (int, error) {
	var names []string
	if err := r.store.List(ctx, storage.KindLock, func(name string, _ int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("listing locks: %w", err)
	}
	locks, _, err := r.Locks(ctx)
	if err != nil {
		return 0, err
	}
	readable := map[string]LockInfo{}
	for _, l := range locks {
		readable[l.Name] = l
	}
	me := thisProcess()
	now := r.now()
	removed := 0
	for _, name := range names {
		if info, ok := readable[name]; ok && !all && info.live(now, me) {
			continue
		}
		if r.lock != nil && r.lock.name == name {
			continue
		}
		if err := r.store.Delete(ctx, storage.KindLock, name); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return removed, fmt.Errorf("removing lock %s: %w", short(name), err)
		}
		removed++
	}
	return removed, nil
}
