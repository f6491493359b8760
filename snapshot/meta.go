package snapshot

import (
	"errors"
	"os/user"
	"strconv"
	"sync"
)

// noDir is readMetaSince's directory descriptor when there is none: the
// entry is looked up by its whole path.
const noDir = -1

// errNeedRoot is wrapped by createSpecial when the kernel refuses to make a
// device node for lack of privilege. Restoring a tree that holds devices as an
// ordinary user is common (a backup of a chroot or container image), so the
// restorer warns and skips such entries instead of failing the whole restore.
var errNeedRoot = errors.New("creating a device node needs root (CAP_MKNOD)")

// errXattrUnsupported is wrapped by applyMeta when an extended attribute cannot
// be set on the destination: the filesystem does not support extended
// attributes (ENOTSUP), or the attribute's namespace may not be written by this
// process or on this kind of file (EPERM, EACCES, e.g. trusted.* as a normal
// user, user.* on a symlink). Losing an attribute should not lose the file, so
// the restorer reports it as a warning.
var errXattrUnsupported = errors.New("extended attribute not supported here")

// errSpecialUnsupported is wrapped by createSpecial on systems where
// coffer does not create special files (meta_other.go); the restorer
// warns and skips them.
var errSpecialUnsupported = errors.New("special files (fifos, sockets, devices) are restored on Linux only")

// region is a byte range [Off, Off+Len) of a file that holds data; the bytes
// between regions are holes and read as zeros.
type region struct{ Off, Len int64 }

// idNames maps numeric owners to names for Node.User and Node.Group. Snapshots
// record names besides ids so a later restore on another machine can tell who
// owned a file even where the ids differ. A tree has many files but few
// owners, and a lookup may parse /etc/passwd or ask NSS, so results are cached
// for the life of one backup; failures are cached as "" so an unknown id costs
// one lookup, not one per file. It is safe for concurrent use by the
// archiver's workers.
type idNames struct {
	mu     sync.Mutex
	users  map[uint32]string
	groups map[uint32]string
}

// newIDNames returns an empty cache.
func newIDNames() *idNames {
	return &idNames{users: make(map[uint32]string), groups: make(map[uint32]string)}
}

// user returns the name of uid, or "" if it has none. A nil cache resolves
// nothing, which lets callers that do not want names pass nil.
func (c *idNames) user(uid uint32) string {
	if c == nil {
		return ""
	}
	return c.lookup(c.users, uid, func(id string) (string, error) {
		u, err := user.LookupId(id)
		if err != nil {
			return "", err
		}
		return u.Username, nil
	})
}

// group returns the name of gid, or "" if it has none.
func (c *idNames) group(gid uint32) string {
	if c == nil {
		return ""
	}
	return c.lookup(c.groups, gid, func(id string) (string, error) {
		g, err := user.LookupGroupId(id)
		if err != nil {
			return "", err
		}
		return g.Name, nil
	})
}

// lookup consults m under the lock but calls resolve without it, so one slow
// NSS query does not stall every other worker's cached lookups. Two workers
// may then resolve the same new id at once; both get the same answer, so the
// duplicate work is harmless.
func (c *idNames) lookup(m map[uint32]string, id uint32, resolve func(string) (string, error)) string {
	c.mu.Lock()
	name, ok := m[id]
	c.mu.Unlock()
	if ok {
		return name
	}
	name, err := resolve(strconv.FormatUint(uint64(id), 10))
	if err != nil {
		name = ""
	}
	c.mu.Lock()
	m[id] = name
	c.mu.Unlock()
	return name
}
