package snapshot

// Standard input as one regular file: a database dump piped into a backup
// (`pg_dump db | coffer backup -stdin-name db.sql`), and the check that a
// backed-up path is not a stream whose content a path cannot carry.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/cofferhq/coffer/repo"
)

// StdinMode is the permission bits of a file stored from standard input.
// Not restic's 0644: such files are mostly database dumps, which hold
// secrets a restore should not leave readable by every user.
const StdinMode = 0o600

// ErrStreamPath marks a backed-up path that names standard input, a pipe
// or a character device: backing it up as a path would store a symlink or
// a device node, not the data read from it.
var ErrStreamPath = errors.New("cannot be backed up as a path")

// ErrEmptyStdin is the warning of a backup of standard input that read
// nothing: the snapshot holds an empty file, which a dump job that failed
// before writing would otherwise pass off as a backup.
var ErrEmptyStdin = errors.New("standard input was empty")

// CheckStdinName returns an error unless name can be the name of the file
// standard input is stored as: one path element, not "." or "..".
func CheckStdinName(name string) error {
	switch {
	case name == "":
		return errors.New("the name of standard input's file is empty")
	case name == "." || name == "..":
		return fmt.Errorf("the name of standard input's file cannot be %q", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("the name of standard input's file, %q, cannot contain / or NUL: it is a file at the top of the snapshot", name)
	}
	return nil
}

// checkStreamPath returns an error wrapping ErrStreamPath if path (as
// given, absolute abs) is standard input, another open file descriptor,
// a pipe or a character device, or a symlink to one. Only backed-up
// paths are checked: a pipe or device inside a backed-up directory is
// stored as the special file it is.
func checkStreamPath(path, abs string) error {
	var what string
	switch {
	case abs == "/dev/stdin" || abs == "/dev/fd/0" || abs == "/proc/self/fd/0":
		what = "standard input"
	case strings.HasPrefix(abs, "/dev/fd/") || strings.HasPrefix(abs, "/proc/self/fd/") ||
		abs == "/dev/stdout" || abs == "/dev/stderr":
		what = "an open file descriptor"
	}
	if what == "" {
		// Stat follows symlinks, /dev/stdin's to /proc/self/fd/0 and on to
		// what the descriptor is: a pipe or a terminal.
		fi, err := os.Stat(abs)
		if err != nil {
			return nil // a dangling symlink is backed up as itself
		}
		switch {
		case fi.Mode()&fs.ModeNamedPipe != 0:
			what = "a pipe"
		case fi.Mode()&fs.ModeCharDevice != 0:
			what = "a character device"
		default:
			return nil
		}
	}
	return fmt.Errorf("backup %s: %s %w", path, what, ErrStreamPath)
}

// backupStdin stores opt.Stdin as the file opt.StdinName at the top of the
// root tree and returns the root tree's id. It runs in the walk's place:
// the content goes through the same chunker and blob workers as a file's,
// read on this goroutine as it arrives, so standard input is never held
// in memory beyond the chunks being stored.
func (a *archiver) backupStdin(ctx context.Context) (repo.ID, error) {
	n := stdinNode(a.opt.StdinName, a.names, time.Now())
	path := "/" + n.Name
	d := newTopDir(path, nil) // holds the file; there is no tree to store
	job := &fileJob{path: path, node: n, dir: d}
	d.remaining.Add(1)
	job.remaining.Store(1)
	a.files.Add(1)
	a.newFiles.Add(1)
	a.filesRead.Add(1)
	read, err := a.readToEOF(ctx, job, a.opt.Stdin)
	a.bytesRead.Add(read)
	a.prog.Processed(1, 0) // its bytes went by chunk
	if err != nil {
		if ctx.Err() != nil {
			return repo.ID{}, ctx.Err()
		}
		// Unlike a file that vanished, a broken stream is the one thing
		// to back up: storing what was read would pass a prefix off as
		// the dump.
		return repo.ID{}, fmt.Errorf("reading standard input: %w", err)
	}
	if read == 0 {
		a.errs.Add(1)
		a.prog.Warn(path, ErrEmptyStdin)
	}
	if err := job.release(ctx, a); err != nil {
		return repo.ID{}, err
	}
	if err := a.releaseDir(ctx, d); err != nil {
		return repo.ID{}, err
	}
	if err := d.wait(ctx); err != nil {
		return repo.ID{}, err
	}
	return saveTree(ctx, a.saver, []*Node{n})
}

// stdinNode returns the node of standard input stored as name: a regular
// file of StdinMode, owned by the current user, modified now.
func stdinNode(name string, names *idNames, now time.Time) *Node {
	n := &Node{Name: name, Type: TypeFile, Mode: StdinMode, ModTime: now.UTC(), ChangeTime: now.UTC()}
	// Getuid and Getgid are -1 where there are none (Windows).
	if uid, gid := os.Getuid(), os.Getgid(); uid >= 0 && gid >= 0 {
		n.UID, n.GID = uint32(uid), uint32(gid)
		n.User, n.Group = names.user(n.UID), names.group(n.GID)
	}
	return n
}

// stdinPaths checks a backup of standard input's options and returns its
// snapshot paths.
func stdinPaths(opt BackupOptions) ([]string, error) {
	if len(opt.Paths) > 0 {
		return nil, errors.New("standard input is backed up alone: give no paths with it")
	}
	if opt.Stdin == nil {
		return nil, errors.New("no standard input to back up")
	}
	if err := CheckStdinName(opt.StdinName); err != nil {
		return nil, err
	}
	return []string{"/" + opt.StdinName}, nil
}
