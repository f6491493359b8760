package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/cofferhq/coffer/storage"
)

// Object Lock: `create -object-lock DAYS` on a bucket created with
// Object Lock enabled makes the store write every object of the
// repository, but its locks and prune plans (which coffer rewrites and
// removes as it runs), with a COMPLIANCE retention of DAYS from the
// moment it is written. Until then nobody, with any credential, can
// delete or overwrite that object (on a versioned bucket, as AWS's are,
// a plain DELETE adds a delete marker and the retained version stays, to
// be restored), so a stolen credential cannot destroy the backups of
// that window. The setting is a plain object beside the config, written
// first and itself retained, so that every client applies it. coffer's
// own deletes go by version id on a versioned bucket (deleteVersions),
// so that the retention refuses them and nothing stays stored behind a
// delete marker once it has ended.

// objectLockName is the key, below the prefix, of the retention setting.
const objectLockName = "object-lock"

// retainedKinds are the kinds written with a retention. Locks and plans
// are not: coffer overwrites and deletes them as it runs, and they hold
// no data.
var retainedKinds = map[storage.Kind]bool{
	storage.KindPack: true, storage.KindIndex: true, storage.KindSnapshot: true,
	storage.KindKey: true, storage.KindForgotten: true,
}

// lockDays returns the retention in days that Create or Open found, 0
// for none.
func (s *Store) lockDays() int {
	return int(s.objectLock.Load())
}

// retention returns the retention options of a Put of kind.
func (s *Store) retention(kind storage.Kind, opts *minio.PutObjectOptions) {
	days := s.lockDays()
	if days <= 0 || (kind != "" && !retainedKinds[kind]) {
		return
	}
	opts.Mode = minio.Compliance
	opts.RetainUntilDate = time.Now().Add(time.Duration(days) * s.day()).UTC()
}

// testDayEnv names the variable that tests set (to a Go duration) to
// make a day of retention that short, so that they see a retention end.
const testDayEnv = "COFFER_TEST_OBJECT_LOCK_DAY"

// day is how long a day of retention lasts: 24 hours, but in tests.
func (s *Store) day() time.Duration {
	if d, err := time.ParseDuration(s.opt.getenv()(testDayEnv)); err == nil && d > 0 {
		return d
	}
	return 24 * time.Hour
}

// checkBucketLock refuses -object-lock on a bucket without Object Lock,
// before anything is written: S3 cannot turn it on for a bucket's
// existing objects, and objects written without retention would be
// unprotected.
func (s *Store) checkBucketLock(ctx context.Context) error {
	var enabled string
	err := s.retrying(ctx, func(ctx context.Context) error {
		var err error
		enabled, _, _, _, err = s.client.GetObjectLockConfig(ctx, s.loc.bucket)
		return err
	})
	var resp minio.ErrorResponse
	if err != nil && !(errors.As(err, &resp) && strings.Contains(resp.Code, "ObjectLockConfiguration")) {
		return s.wrap("reading the bucket's Object Lock setting", err)
	}
	if enabled != "Enabled" {
		return fmt.Errorf("%s: create -object-lock: bucket %s does not have Object Lock enabled: create a bucket with it (aws s3api create-bucket --object-lock-enabled-for-bucket, mc mb --with-lock) and use that", s.loc, s.loc.bucket)
	}
	return nil
}

// readLockSetting reads the retention setting Create wrote, if any.
func (s *Store) readLockSetting(ctx context.Context) error {
	var text []byte
	err := s.retrying(ctx, func(ctx context.Context) error {
		rc, err := s.getRange(ctx, s.loc.key(objectLockName), nil, "")
		if err != nil {
			return err
		}
		defer rc.Close()
		text, err = io.ReadAll(io.LimitReader(rc, 1024))
		return err
	})
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && resp.Code == "NoSuchKey" {
		s.objectLock.Store(0)
		return nil
	}
	if err != nil {
		return s.wrap("reading the Object Lock setting", err)
	}
	days, ok := parseLockSetting(string(text))
	if !ok {
		return fmt.Errorf("%s: the %s object holds %q, not a retention this coffer knows: %w", s.loc, objectLockName, text, storage.ErrCorrupt)
	}
	s.objectLock.Store(int64(days))
	return nil
}

// lockSetting is the text of the setting object.
func lockSetting(days int) string {
	return "coffer object lock v1\nmode COMPLIANCE\ndays " + strconv.Itoa(days) + "\n"
}

// parseLockSetting reads lockSetting's text.
func parseLockSetting(text string) (int, bool) {
	rest, ok := strings.CutPrefix(text, "coffer object lock v1\nmode COMPLIANCE\ndays ")
	if !ok {
		return 0, false
	}
	days, err := strconv.Atoi(strings.TrimSuffix(rest, "\n"))
	return days, err == nil && days > 0
}

// isRefused reports whether err is the endpoint refusing a write or a
// delete (403): what Object Lock answers for a retained object.
func isRefused(err error) bool {
	var resp minio.ErrorResponse
	return errors.As(err, &resp) && resp.StatusCode == http.StatusForbidden
}

// retainedUntil returns the retention mode and date of key, or of its
// version when version is set, from its HEAD (which needs only
// s3:GetObject, or s3:GetObjectVersion for a version, where
// GetObjectRetention needs s3:GetObjectRetention; VersityGW also answers
// the latter with an XML element minio-go does not read).
func (s *Store) retainedUntil(ctx context.Context, key, version string) (mode string, until time.Time, err error) {
	err = s.retrying(ctx, func(ctx context.Context) error {
		info, err := s.client.StatObject(ctx, s.loc.bucket, key, minio.StatObjectOptions{VersionID: version})
		if err != nil {
			return err
		}
		mode = info.Metadata.Get("X-Amz-Object-Lock-Mode")
		if d := info.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date"); d != "" {
			until, err = time.Parse(time.RFC3339, d)
		}
		return err
	})
	return mode, until, err
}

// retainedError explains a refused delete of a retained object: until
// when, and what to do.
// On a versioned bucket, versions are those of key that refused their
// delete, and the date is the latest of theirs: the date after which a
// delete removes them all.
func (s *Store) retainedError(ctx context.Context, op, key string, versions []string, err error) error {
	if len(versions) == 0 {
		versions = []string{""}
	}
	var latest time.Time
	for _, v := range versions {
		_, until, rerr := s.retainedUntil(ctx, key, v)
		if rerr != nil || !until.After(time.Now()) {
			return s.wrap(op, err)
		}
		if until.After(latest) {
			latest = until
		}
	}
	return &RetainedError{Op: s.loc.String() + ": " + op, By: "Object Lock", Until: latest.UTC()}
}

// bucketVersioned reports whether the bucket keeps versions (versioning
// enabled, or suspended after it was: versions may be stored), asked
// once (s3:GetBucketVersioning) and remembered. A server that does not
// implement the question, or answers it with anything but a refusal,
// keeps no versions as far as coffer can tell (VersityGW's posix
// backend); a refusal (403) is an error, since taking it for "not
// versioned" would let a delete marker hide retained versions again.
func (s *Store) bucketVersioned(ctx context.Context) (bool, error) {
	s.versioning.Lock()
	defer s.versioning.Unlock()
	if s.versioning.known {
		return s.versioning.on, nil
	}
	var conf minio.BucketVersioningConfiguration
	err := s.retrying(ctx, func(ctx context.Context) error {
		var err error
		conf, err = s.client.GetBucketVersioning(ctx, s.loc.bucket)
		return err
	})
	if err != nil && isRefused(err) {
		return false, err
	}
	s.versioning.known, s.versioning.on = true, err == nil && (conf.Enabled() || conf.Suspended())
	return s.versioning.on, nil
}

// deleteVersions deletes every version of key, and its delete markers,
// by version id (s3:ListBucketVersions, s3:DeleteObjectVersion): on a
// versioned bucket, a DELETE without a version adds a delete marker and
// succeeds while the retained versions stay, billed, with nothing left
// to delete them once their retention ends. Deleting a retained version
// is refused, and the refusal is a RetainedError, as on a bucket without
// versioning. A key whose newest version is a delete marker (an older
// coffer deleted it so) is not there: ErrNotFound, and nothing is
// deleted, since deleting the marker would bring the object back.
func (s *Store) deleteVersions(ctx context.Context, op, key string) error {
	var versions []minio.ObjectInfo
	err := s.retrying(ctx, func(ctx context.Context) error {
		versions = versions[:0]
		opts := minio.ListObjectsOptions{Prefix: key, WithVersions: true, Recursive: true}
		for obj := range s.client.ListObjectsIter(ctx, s.loc.bucket, opts) {
			if obj.Err != nil {
				return obj.Err
			}
			if obj.Key == key { // not a longer key that starts with it
				versions = append(versions, obj)
			}
		}
		return nil
	})
	if err != nil {
		return s.wrap(op+": listing its versions", err)
	}
	if latest := newestVersion(versions); latest == nil || latest.IsDeleteMarker {
		return fmt.Errorf("%s: %s: no such object: %w", s.loc, op, storage.ErrNotFound)
	}
	var refused []string
	var refusal error
	for _, v := range versions {
		err := s.retrying(ctx, func(ctx context.Context) error {
			return s.client.RemoveObject(ctx, s.loc.bucket, key, minio.RemoveObjectOptions{VersionID: v.VersionID})
		})
		switch {
		case err == nil:
		case isRefused(err) && !v.IsDeleteMarker:
			refused, refusal = append(refused, v.VersionID), err
		default:
			return s.wrap(fmt.Sprintf("%s: version %s", op, v.VersionID), err)
		}
	}
	if refusal != nil {
		return s.retainedError(ctx, op, key, refused, refusal)
	}
	return nil
}

// newestVersion returns the current version of a key among its listed
// versions: the one marked latest, else the first (S3 lists a key's
// versions newest first); nil if there are none.
func newestVersion(versions []minio.ObjectInfo) *minio.ObjectInfo {
	for i := range versions {
		if versions[i].IsLatest {
			return &versions[i]
		}
	}
	if len(versions) == 0 {
		return nil
	}
	return &versions[0]
}

// RetainedError is a delete that Object Lock refused: the object is
// retained until Until. It matches storage.ErrRetained and
// storage.ErrAccessDenied.
type RetainedError = storage.RetainedError
