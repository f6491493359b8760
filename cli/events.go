package cli

import (
	"time"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
)

// The -json output: one JSON object per line, each of one of the types
// below, told apart by "type" (and summaries by "command"). They are the
// machine interface, documented field by field in docs/json.md, which
// TestJSONGolden keeps honest: sizes are bytes, durations seconds (a
// number), times RFC 3339, lists never null.

// errorEvent ends a failed command, on stderr.
type errorEvent struct {
	Type     string `json:"type"` // "error"
	Message  string `json:"message"`
	ExitCode int    `json:"exit_code"`
}

// warningEvent is something the user should know; the command goes on.
type warningEvent struct {
	Type    string `json:"type"`           // "warning"
	Path    string `json:"path,omitempty"` // the entry concerned, if one
	Message string `json:"message"`
}

// noticeEvent tells what the command is waiting for, such as a registry
// that is down.
type noticeEvent struct {
	Type    string `json:"type"` // "notice"
	Message string `json:"message"`
}

// summaryHead starts every summary: which command it sums up.
type summaryHead struct {
	Type    string `json:"type"`    // "summary"
	Command string `json:"command"` // the command's name
}

func head(command string) summaryHead { return summaryHead{"summary", command} }

// backupSummary is snapshot.Summary with its duration in seconds.
type backupSummary struct {
	Files          int64     `json:"files"`
	Dirs           int64     `json:"dirs"`
	Others         int64     `json:"others"`
	Size           int64     `json:"size"`
	NewFiles       int64     `json:"new_files"`
	ChangedFiles   int64     `json:"changed_files"`
	UnchangedFiles int64     `json:"unchanged_files"`
	FilesRead      int64     `json:"files_read"`
	BytesRead      int64     `json:"bytes_read"`
	NewBlobs       int64     `json:"new_blobs"`
	NewBytes       int64     `json:"new_bytes"`
	StoredBytes    int64     `json:"stored_bytes"`
	Errors         int64     `json:"errors"`
	Start          time.Time `json:"start"`
	Seconds        float64   `json:"seconds"`
}

func newBackupSummary(s snapshot.Summary) backupSummary {
	return backupSummary{Files: s.Files, Dirs: s.Dirs, Others: s.Others, Size: s.Size, NewFiles: s.NewFiles,
		ChangedFiles: s.ChangedFiles, UnchangedFiles: s.UnchangedFiles, FilesRead: s.FilesRead, BytesRead: s.BytesRead,
		NewBlobs: s.NewBlobs, NewBytes: s.NewBytes, StoredBytes: s.StoredBytes, Errors: s.Errors, Start: s.Start,
		Seconds: s.Duration.Seconds()}
}

// backupEvent sums up a backup.
type backupEvent struct {
	summaryHead
	SnapshotID string        `json:"snapshot_id"` // empty for a dry run
	DryRun     bool          `json:"dry_run"`
	Summary    backupSummary `json:"summary"`
}

// snapshotEvent is a snapshot listed (ls).
type snapshotEvent struct {
	Type     string        `json:"type"` // "snapshot"
	ID       string        `json:"id"`
	ShortID  string        `json:"short_id"`
	Time     time.Time     `json:"time"`
	Host     string        `json:"host"`
	User     string        `json:"user"`
	Paths    []string      `json:"paths"`
	Tags     []string      `json:"tags"`
	Original string        `json:"original,omitempty"` // the snapshot it is a copy of (sync, tag)
	Summary  backupSummary `json:"summary"`
}

func newSnapshotEvent(sn *snapshot.Snapshot) snapshotEvent {
	e := snapshotEvent{Type: "snapshot", ID: sn.ID.String(), ShortID: sn.ID.Short(), Time: sn.Time, Host: sn.Host,
		User: sn.User, Paths: nonNil(sn.Paths), Tags: nonNil(sn.Tags), Summary: newBackupSummary(sn.Summary)}
	if !sn.Original.IsZero() {
		e.Original = sn.Original.String()
	}
	return e
}

// entryEvent is an entry of a directory listed (ls snap:path).
type entryEvent struct {
	Type string         `json:"type"` // "entry"
	Path string         `json:"path"`
	Node *snapshot.Node `json:"node"`
}

// matchEvent is an entry find found.
type matchEvent struct {
	Type     string            `json:"type"` // "match"
	Snapshot string            `json:"snapshot"`
	ShortID  string            `json:"short_id"`
	Path     string            `json:"path"`
	NodeType snapshot.NodeType `json:"node_type"` // file, dir, symlink, ...
	Size     int64             `json:"size"`
	MTime    time.Time         `json:"mtime"`
}

// restoreEvent sums up a restore.
type restoreEvent struct {
	summaryHead
	SnapshotID string                  `json:"snapshot_id"`
	Target     string                  `json:"target"`
	Summary    snapshot.RestoreSummary `json:"summary"`
}

// archiveEvent sums up an archive written to a file or stdout.
type archiveEvent struct {
	summaryHead
	SnapshotID string `json:"snapshot_id"`
	Path       string `json:"path"`
	File       string `json:"file"` // empty for stdout
	Format     string `json:"format"`
	Bytes      int64  `json:"bytes"`
}

// problemEvent is a problem check found.
type problemEvent struct {
	Type    string `json:"type"` // "problem"
	Message string `json:"message"`
}

// checkEvent sums up a check.
type checkEvent struct {
	summaryHead
	Result snapshot.CheckResult `json:"result"`
}

// changeEvent is one difference diff found.
type changeEvent struct {
	Type   string          `json:"type"` // "change"
	Change snapshot.Change `json:"change"`
}

// diffEvent sums up a diff.
type diffEvent struct {
	summaryHead
	Added    int `json:"added"`
	Removed  int `json:"removed"`
	Modified int `json:"modified"`
	Metadata int `json:"metadata"`
}

// createdEvent reports a new repository.
type createdEvent struct {
	Type     string `json:"type"` // "created"
	ID       string `json:"id"`
	Location string `json:"location"`
}

// infoEvent describes a repository.
type infoEvent struct {
	Type             string            `json:"type"` // "info"
	ID               string            `json:"id"`
	FormatVersion    int               `json:"format_version"`
	Created          time.Time         `json:"created"`
	Store            map[string]string `json:"store"`
	Snapshots        int               `json:"snapshots"`
	Keys             int               `json:"keys"`
	Packs            int               `json:"packs"`
	DataBlobs        int               `json:"data_blobs"`
	TreeBlobs        int               `json:"tree_blobs"`
	LogicalBytes     int64             `json:"logical_bytes"`
	UniqueBytes      int64             `json:"unique_bytes"`
	StoredBytes      int64             `json:"stored_bytes"`
	DedupRatio       float64           `json:"dedup_ratio"`       // 0 without data
	CompressionRatio float64           `json:"compression_ratio"` // 0 without data
	PackSize         int               `json:"pack_size"`
	Chunker          any               `json:"chunker"`
}

// keyEvent is a key listed, added or removed.
type keyEvent struct {
	Type    string     `json:"type"` // "key", "key_added", "key_removed"
	ID      string     `json:"id"`
	Created *time.Time `json:"created,omitempty"` // key list only
	Host    string     `json:"host,omitempty"`
	User    string     `json:"user,omitempty"`
	Current bool       `json:"current"` // the key this command opened the repository with
}

func newKeyEvent(k repo.KeyInfo) keyEvent {
	created := k.Created
	return keyEvent{Type: "key", ID: k.Name, Created: &created, Host: k.Host, User: k.User, Current: k.Current}
}

// loginEvent reports credentials stored or removed.
type loginEvent struct {
	Type     string `json:"type"` // "login", "logout"
	Registry string `json:"registry"`
	Username string `json:"username,omitempty"`
	// Removed says, for a logout, whether there were credentials to remove.
	Removed *bool `json:"removed,omitempty"`
}

// removedEvent lists the snapshots forget removed (or would remove).
type removedEvent struct {
	Type    string   `json:"type"` // "removed"
	DryRun  bool     `json:"dry_run"`
	Removed []string `json:"removed"`
	// Retained lists the snapshots a retention (S3 Object Lock) keeps
	// until RetainedUntil at the latest: their removal is recorded, and
	// the first prune or forget after that date removes them.
	Retained      []string   `json:"retained,omitempty"`
	RetainedUntil *time.Time `json:"retained_until,omitempty"`
}

// groupEvent is what forget's policy decided for one group.
type groupEvent struct {
	Type    string            `json:"type"` // "group"
	Group   snapshot.GroupKey `json:"group"`
	Keep    []string          `json:"keep"`
	Remove  []string          `json:"remove"`
	Reasons []keepReasonEvent `json:"reasons"`
}

// keepReasonEvent says why forget keeps a snapshot.
type keepReasonEvent struct {
	ID      string   `json:"id"`
	Matches []string `json:"matches"`
}

// pruneEvent sums up a prune.
type pruneEvent struct {
	summaryHead
	DryRun bool            `json:"dry_run"`
	Prune  repo.PruneStats `json:"prune"`
}

// repairIndexEvent sums up repair index.
type repairIndexEvent struct {
	summaryHead
	RepairIndex repo.RepairIndexStats `json:"repair_index"`
}

// refsTagEvent is a lost refs tag repair refs found.
type refsTagEvent struct {
	Type    string `json:"type"` // "refs_tag"
	Tag     string `json:"tag"`
	Kept    int    `json:"kept"` // objects referenced again; -1: this client never read the tag
	Lost    int    `json:"lost"` // objects gone from the registry; -1 as Kept
	Retired bool   `json:"retired"`
}

// repairRefsEvent sums up repair refs.
type repairRefsEvent struct {
	summaryHead
	RepairRefs struct {
		Retired int `json:"retired"`
		Left    int `json:"left"` // lost tags left for a client that read them (no -force)
	} `json:"repair_refs"`
}

// lostEvent is an entry repair snapshots leaves out.
type lostEvent struct {
	Type       string `json:"type"` // "lost"
	SnapshotID string `json:"snapshot_id"`
	Path       string `json:"path"`
	Reason     string `json:"reason"`
}

// repairSnapshotsEvent sums up repair snapshots.
type repairSnapshotsEvent struct {
	summaryHead
	DryRun          bool                 `json:"dry_run"`
	RepairSnapshots snapshot.RepairStats `json:"repair_snapshots"`
}

// snapshotStatsEvent is stats of one snapshot.
type snapshotStatsEvent struct {
	Type              string    `json:"type"` // "snapshot_stats"
	ID                string    `json:"id"`
	Time              time.Time `json:"time"`
	Host              string    `json:"host"`
	Files             int64     `json:"files"`
	Dirs              int64     `json:"dirs"`
	Others            int64     `json:"others"`
	RestoreSize       int64     `json:"restore_size"`
	Blobs             int64     `json:"blobs"`
	RawBytes          int64     `json:"raw_bytes"`
	StoredBytes       int64     `json:"stored_bytes"`
	UniqueBlobs       int64     `json:"unique_blobs"`
	UniqueRawBytes    int64     `json:"unique_raw_bytes"`
	UniqueStoredBytes int64     `json:"unique_stored_bytes"`
}

// repositoryStatsEvent is stats of the whole repository.
type repositoryStatsEvent struct {
	Type             string  `json:"type"` // "repository_stats"
	Snapshots        int     `json:"snapshots"`
	LogicalBytes     int64   `json:"logical_bytes"`
	UniqueBytes      int64   `json:"unique_bytes"`
	StoredBytes      int64   `json:"stored_bytes"`
	Packs            int     `json:"packs"`
	DataBlobs        int     `json:"data_blobs"`
	TreeBlobs        int     `json:"tree_blobs"`
	DedupRatio       float64 `json:"dedup_ratio"`
	CompressionRatio float64 `json:"compression_ratio"`
}

// storeEvent is a named store added or listed, or removed.
type storeEvent struct {
	Type     string   `json:"type"` // "store", "store_removed"
	Name     string   `json:"name"`
	Location string   `json:"location,omitempty"`
	Options  []string `json:"options"`
	Config   string   `json:"config,omitempty"` // the file, when one was written
}

// syncedEvent is a snapshot sync stored in the destination.
type syncedEvent struct {
	Type   string    `json:"type"`   // "synced"
	Source string    `json:"source"` // the snapshot copied (its original, when it is a copy itself)
	ID     string    `json:"id"`     // the copy's id (the same, with shared keys)
	Time   time.Time `json:"time"`
	Host   string    `json:"host"`
	Paths  []string  `json:"paths"`
}

// syncEvent sums up a sync.
type syncEvent struct {
	summaryHead
	Copied        int   `json:"copied"`
	Skipped       int   `json:"skipped"`
	SameKeys      bool  `json:"same_keys"`
	PacksCopied   int   `json:"packs_copied"`
	PacksMounted  int   `json:"packs_mounted"`
	BlobsCopied   int64 `json:"blobs_copied"`
	BlobsPresent  int64 `json:"blobs_present"`
	BytesUploaded int64 `json:"bytes_uploaded"`
	BytesRead     int64 `json:"bytes_read"`
	PacksWritten  int   `json:"packs_written"`
	IndexObjects  int   `json:"index_objects"`
}

// retaggedEvent is a snapshot tag stored again with other tags.
type retaggedEvent struct {
	Type  string   `json:"type"` // "retagged"
	OldID string   `json:"old_id"`
	ID    string   `json:"id"`
	Tags  []string `json:"tags"`
}

// tagEvent sums up tag.
type tagEvent struct {
	summaryHead
	Changed   int `json:"changed"`
	Snapshots int `json:"snapshots"`
}

// unlockEvent sums up unlock.
type unlockEvent struct {
	summaryHead
	Removed int `json:"removed"`
}

// cacheEvent is a cache directory listed (and maybe removed).
type cacheEvent struct {
	Type    string    `json:"type"` // "cache"
	Kind    string    `json:"kind"` // repository, registry
	Name    string    `json:"name"`
	Path    string    `json:"path"`
	Bytes   int64     `json:"bytes"`
	Used    time.Time `json:"used"`
	Removed bool      `json:"removed"`
}

// cacheSummaryEvent sums up cache.
type cacheSummaryEvent struct {
	summaryHead
	Dir        string `json:"dir"`
	Caches     int    `json:"caches"`
	Bytes      int64  `json:"bytes"`
	Removed    int    `json:"removed"`
	FreedBytes int64  `json:"freed_bytes"`
	CachedKeys int    `json:"cached_keys"` // held by -key-cache, not expired
	ForgotKeys int    `json:"forgotten_keys"`
}

// versionEvent is version's output.
type versionEvent struct {
	Type     string `json:"type"` // "version"
	Version  string `json:"version"`
	Revision string `json:"revision"`
	Modified bool   `json:"modified"`
	Format   int    `json:"format"`
	Go       string `json:"go"`
}

// manEvent is man's output.
type manEvent struct {
	Type  string `json:"type"` // "man"
	Dir   string `json:"dir"`
	Pages int    `json:"pages"`
}

// mountEvent says that the snapshots are mounted.
type mountEvent struct {
	Type      string `json:"type"` // "mount"
	Dir       string `json:"dir"`
	Snapshots int    `json:"snapshots"`
}

// uiEvent says where the web UI listens.
type uiEvent struct {
	Type string `json:"type"` // "ui"
	URL  string `json:"url"`
}

// nonNil makes an empty list a JSON array rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
