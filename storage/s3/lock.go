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
// a DELETE adds a delete marker and the retained version stays, to be
// restored), so a stolen credential cannot destroy the backups of that
// window. The setting is a plain object beside the config, written
// first and itself retained, so that every client applies it.

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

// retainedUntil returns the retention mode and date of key, from its
// HEAD (which needs only s3:GetObject, where GetObjectRetention needs
// s3:GetObjectRetention; VersityGW also answers the latter with an XML
// element minio-go does not read).
func (s *Store) retainedUntil(ctx context.Context, key string) (mode string, until time.Time, err error) {
	err = s.retrying(ctx, func(ctx context.Context) error {
		info, err := s.client.StatObject(ctx, s.loc.bucket, key, minio.StatObjectOptions{})
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
func (s *Store) retainedError(ctx context.Context, op, key string, err error) error {
	_, until, rerr := s.retainedUntil(ctx, key)
	if rerr != nil || !until.After(time.Now()) {
		return s.wrap(op, err)
	}
	return &RetainedError{Op: s.loc.String() + ": " + op, By: "Object Lock", Until: until.UTC()}
}

// RetainedError is a delete that Object Lock refused: the object is
// retained until Until. It matches storage.ErrRetained and
// storage.ErrAccessDenied.
type RetainedError = storage.RetainedError
