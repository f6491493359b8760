package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
	"github.com/cofferhq/coffer/storage"
)

// Exit codes. They are documented in README.md; keep the two in step.
const (
	ExitOK            = 0   // success
	ExitFailure       = 1   // any error not listed below
	ExitUsage         = 2   // bad command line, including a malformed store location
	ExitPartial       = 3   // backup, restore -ignore-errors or diff against the disk completed, but some files could not be read; or files not read in full at backup time were written
	ExitNoRepository  = 10  // no repository at the location, or one already exists on create
	ExitWrongPassword = 11  // no key opens with the passphrase
	ExitNewerFormat   = 12  // repository written by a newer coffer
	ExitNoSnapshot    = 13  // snapshot id prefix unknown or ambiguous
	ExitNoPath        = 14  // path not in the snapshot
	ExitCorrupt       = 15  // data failed verification; check found errors
	ExitTarget        = 16  // restore target exists or is not writable
	ExitDiskFull      = 17  // no space left on the restore target, for a backup's pack files, or for an archive -o
	ExitAccessDenied  = 18  // the store refused the credentials, or a delete (Object Lock)
	ExitLocked        = 19  // another process holds the exclusive lock
	ExitInterrupted   = 130 // interrupted by a signal
)

// errUsage marks command-line mistakes.
var errUsage = errors.New("usage")

// errCheckFailed reports that check found problems it already printed.
var errCheckFailed = errors.New("check found errors")

// errPartial reports a backup that skipped unreadable entries.
var errPartial = errors.New("backup is partial: some entries could not be read")

// errDiffPartial reports a diff against the disk that left out entries
// it could not read (warned about).
var errDiffPartial = errors.New("diff is partial: some entries on disk could not be read")

// errRestorePartial reports a restore -ignore-errors that left out files
// it could not read.
var errRestorePartial = errors.New("restore is partial: damaged data kept some files from being restored")

// errIncomplete reports a cat, archive or restore that wrote files the
// snapshot holds only in part: they could not be read in full at backup
// time, and the backup warned and exited 3 then.
var errIncomplete = errors.New("not read in full at backup time")

// partialIncomplete is the error of an archive or restore (what) that
// wrote n files not read in full at backup time, each warned about.
func partialIncomplete(what string, n int64) error {
	return fmt.Errorf("%s is partial: some files were %w and hold what was read (%d; see the warnings above)", what, errIncomplete, n)
}

// errNoSpace reports a file coffer writes (an archive) that its file
// system has no room for.
var errNoSpace = errors.New("no space left on device")

// exitCode maps an error to its exit code: one table, in one place.
func exitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.Is(err, errUsage), errors.Is(err, storage.ErrBadLocation):
		return ExitUsage
	case errors.Is(err, errPartial), errors.Is(err, errRestorePartial), errors.Is(err, errDiffPartial), errors.Is(err, errIncomplete):
		return ExitPartial
	case errors.Is(err, storage.ErrNotFound) && !errors.Is(err, repo.ErrCorrupt),
		errors.Is(err, storage.ErrExists):
		return ExitNoRepository
	case errors.Is(err, repo.ErrWrongPassphrase):
		return ExitWrongPassword
	case errors.Is(err, repo.ErrNewerFormat):
		return ExitNewerFormat
	case errors.Is(err, snapshot.ErrSnapshotNotFound), errors.Is(err, snapshot.ErrAmbiguousSnapshot):
		return ExitNoSnapshot
	case errors.Is(err, snapshot.ErrPathNotFound):
		return ExitNoPath
	case errors.Is(err, repo.ErrCorrupt), errors.Is(err, storage.ErrCorrupt), errors.Is(err, repo.ErrBlobNotFound), errors.Is(err, errCheckFailed),
		errors.Is(err, storage.ErrLostReferences),
		errors.Is(err, repo.ErrRolledBack):
		return ExitCorrupt
	case errors.Is(err, snapshot.ErrTargetExists), errors.Is(err, snapshot.ErrTargetNotWritable):
		return ExitTarget
	case errors.Is(err, snapshot.ErrDiskFull), errors.Is(err, repo.ErrNoTempSpace), errors.Is(err, errNoSpace):
		return ExitDiskFull
	case errors.Is(err, storage.ErrAccessDenied), errors.Is(err, storage.ErrRetained):
		return ExitAccessDenied
	case errors.Is(err, repo.ErrLocked):
		return ExitLocked
	}
	return ExitFailure
}

// exitCodeTable says what each exit code means, for the manual page;
// README's table says the same (TestExitCodesDocumented).
var exitCodeTable = []struct {
	code    int
	meaning string
}{
	{ExitOK, "success"},
	{ExitFailure, "any other error"},
	{ExitUsage, "bad command line, including a malformed store location, standard input, a pipe or a character device given to backup as a path, a path to back up that does not exist, a ui -addr that is no host:port, and a mount directory that is missing, not a directory or not empty"},
	{ExitPartial, "backup completed, but some entries could not be read, or standard input was empty; restore -ignore-errors or diff against the disk completed, but some entries could not be read; restore, archive or cat wrote files that were not read in full at backup time, with what was read"},
	{ExitNoRepository, "no repository at the location, or create found the store not empty"},
	{ExitWrongPassword, "wrong passphrase: no key opens with it"},
	{ExitNewerFormat, "the repository was written by a newer coffer"},
	{ExitNoSnapshot, "snapshot id prefix unknown or ambiguous"},
	{ExitNoPath, "path not in the snapshot"},
	{ExitCorrupt, "data failed verification (tampered, truncated or missing object), or check found problems"},
	{ExitTarget, "restore target: a file exists (use -overwrite) or the target is not writable"},
	{ExitDiskFull, "no space left on the restore target, for a backup's pack files, or for the file archive -o writes"},
	{ExitAccessDenied, "the store refused the credentials, or Object Lock still retains an object tag or key would delete (forget and prune skip such objects and exit 0)"},
	{ExitLocked, "the repository is locked by another forget or prune"},
	{ExitInterrupted, "interrupted (Ctrl-C, SIGTERM); nothing partial is visible"},
}
