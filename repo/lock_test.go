package repo

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// Two processes of one repository are two Repository values on one store.
func twoProcesses(t *testing.T) (*Repository, *Repository) {
	t.Helper()
	a, st := newTestRepo(t)
	b := openTestRepo(t, st, testPassphrase, OpenOptions{})
	for _, r := range []*Repository{a, b} {
		r.lockPoll = 10 * time.Millisecond
	}
	return a, b
}

func mustLock(t *testing.T, r *Repository, kind LockKind) *Lock {
	t.Helper()
	l, err := r.Lock(t.Context(), kind, "test")
	if err != nil {
		t.Fatalf("%s lock: %v", kind, err)
	}
	t.Cleanup(func() { l.Unlock() })
	return l
}

func TestLockExclusiveExcludesExclusive(t *testing.T) {
	a, b := twoProcesses(t)
	la := mustLock(t, a, LockExclusive)
	_, err := b.Lock(t.Context(), LockExclusive, "prune")
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second exclusive lock = %v, want ErrLocked", err)
	}
	for _, want := range []string{"exclusive lock of `test`", "coffer unlock"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// The refused locker left no lock behind.
	if locks, _, _ := b.Locks(t.Context()); len(locks) != 1 {
		t.Errorf("%d locks after a refused lock, want 1", len(locks))
	}
	if err := la.Unlock(); err != nil {
		t.Fatal(err)
	}
	mustLock(t, b, LockExclusive)
}

func TestLockSharedAndExclusiveCoexist(t *testing.T) {
	a, b := twoProcesses(t)
	mustLock(t, a, LockShared)
	mustLock(t, b, LockShared)
	mustLock(t, b, LockExclusive) // backups do not stop a prune
}

// Merging the store's references deletes what others wrote: only the
// exclusive holder may.
func TestCompactNeedsExclusiveLock(t *testing.T) {
	a, _ := twoProcesses(t)
	a.store = compactingStore{a.store}
	mustLock(t, a, LockShared)
	if err := a.Compact(t.Context()); err == nil {
		t.Error("Compact under a shared lock succeeded")
	}
}

type compactingStore struct{ storage.Store }

func (compactingStore) Compact(context.Context) error { return nil }

// A lock from another machine is live until LockStale after its last
// refresh; one from this machine is live while its process runs.
func TestLockLiveness(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	me := thisProcess()
	tests := []struct {
		name string
		info LockInfo
		live bool
	}{
		{"other machine, fresh", LockInfo{BootID: "other", Refreshed: now.Add(-LockStale + time.Minute)}, true},
		{"other machine, stale", LockInfo{BootID: "other", Refreshed: now.Add(-LockStale - time.Minute)}, false},
		{"no boot id, fresh", LockInfo{Refreshed: now.Add(-time.Minute)}, true},
		{"this machine, this process", LockInfo{BootID: me.bootID, PIDNS: me.pidNS, User: me.user, PID: me.pid, ProcStart: me.procStart, Refreshed: now.Add(-48 * time.Hour)}, me.bootID != ""},
		{"this machine, pid reused", LockInfo{BootID: me.bootID, PIDNS: me.pidNS, User: me.user, PID: me.pid, ProcStart: "1", Refreshed: now}, me.bootID == ""},
		{"this machine, dead pid", LockInfo{BootID: me.bootID, PIDNS: me.pidNS, User: me.user, PID: 1 << 30, ProcStart: "5", Refreshed: now}, me.bootID == ""},
		// Containers share the boot id, not PIDs: time decides.
		{"another pid namespace, fresh", LockInfo{BootID: me.bootID, PIDNS: "pid:[1]", User: me.user, PID: 1 << 30, ProcStart: "5", Refreshed: now}, true},
		{"another pid namespace, stale", LockInfo{BootID: me.bootID, PIDNS: "pid:[1]", User: me.user, PID: 1 << 30, ProcStart: "5", Refreshed: now.Add(-2 * LockStale)}, false},
		// /proc may hide other users' processes: time decides.
		{"another user, fresh", LockInfo{BootID: me.bootID, PIDNS: me.pidNS, User: "someone-else", PID: 1 << 30, ProcStart: "5", Refreshed: now}, true},
	}
	for _, tt := range tests {
		if got := tt.info.live(now, me); got != tt.live {
			t.Errorf("%s: live = %v, want %v", tt.name, got, tt.live)
		}
	}
	if me.bootID == "" || me.procStart == "" || me.pidNS == "" {
		t.Errorf("this Linux machine gave no boot id (%q), process start (%q) or PID namespace (%q)", me.bootID, me.procStart, me.pidNS)
	}
}

// A lock left by a process that died (kill -9) on this machine does not
// stop the next exclusive locker, and unlock removes it.
func TestLockOfDeadProcess(t *testing.T) {
	a, b := twoProcesses(t)
	dead := mustLock(t, a, LockExclusive)
	// What a killed process leaves: its lock, naming a process that no
	// longer runs.
	dead.Unlock()
	dead.info.PID, dead.info.ProcStart = 1<<30, "7"
	if err := dead.write(t.Context()); err != nil {
		t.Fatal(err)
	}
	l := mustLock(t, b, LockExclusive)
	n, err := b.RemoveLocks(t.Context(), false)
	if err != nil || n != 1 {
		t.Errorf("RemoveLocks = %d, %v; want the dead lock removed", n, err)
	}
	if locks, _, _ := b.Locks(t.Context()); len(locks) != 1 || locks[0].Name != l.name {
		t.Errorf("locks after unlock: %v, want only the live one", locks)
	}
}

// The refresher rewrites the lock; a holder that cannot write for
// LockStale/2 knows its lock may be taken for stale.
func TestLockRefreshAndExpiry(t *testing.T) {
	r, st := newTestRepo(t)
	store := &lockPutsFail{Store: st}
	r.store = store
	r.lockRefresh = 20 * time.Millisecond
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	r.now = func() time.Time { return time.Unix(0, clock.Load()) }
	l := mustLock(t, r, LockShared)
	first := r.now()
	clock.Add(int64(time.Minute))
	deadline := time.Now().Add(5 * time.Second)
	for {
		locks, _, err := r.Locks(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(locks) == 1 && locks[0].Refreshed.After(first) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lock was not refreshed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if l.Expired() {
		t.Error("a refreshed lock is expired")
	}
	store.fail.Store(true)
	clock.Add(int64(LockStale))
	time.Sleep(100 * time.Millisecond)
	if !l.Expired() {
		t.Error("a lock not written for LockStale is not expired")
	}
	store.fail.Store(false)
}

// lockPutsFail is a store that can stop writing locks, as when a
// registry is unreachable.
type lockPutsFail struct {
	storage.Store
	fail atomic.Bool
}

func (s *lockPutsFail) Put(ctx context.Context, kind storage.Kind, name string, body storage.Body) error {
	if kind == storage.KindLock && s.fail.Load() {
		return os.ErrPermission
	}
	return s.Store.Put(ctx, kind, name, body)
}
