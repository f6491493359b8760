package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/cofferhq/coffer/storage/internal/retry"
)

// The retry policy is the registry store's (storage/oci/retry.go), so
// that -retry-for means one thing for every store: a whole operation (a
// PUT with its Content-MD5, a ranged GET, a listing page) is repeated,
// never a request below it (minio-go's own retries are off), with
// backoff and jitter, while failures that pass with time go on for up to
// Options.RetryFor, counted from the store's first failure in a row, so
// that one outage costs RetryFor however many operations run into it.

const (
	// DefaultRetryFor is Options.RetryFor's default, the registry
	// store's: long enough to ride out a restart or an upgrade, short
	// enough for a cron job to fail the same night.
	DefaultRetryFor = 10 * time.Minute
	// mismatchAttempts is how many times an answer that contradicts the
	// request (a range other than the one asked for) is tried again
	// before it is an error: a proxy's hiccup passes, a broken server
	// does not.
	mismatchAttempts = 5
)

// bodyError is a failure to read what Put was given: the same bytes
// would fail again, so it is never retried.
type bodyError struct{ err error }

func (e bodyError) Error() string { return "reading the object's bytes: " + e.err.Error() }
func (e bodyError) Unwrap() error { return e.err }

// errRetryNow marks a failure the operation can repeat at once, changed
// (a conditional write the server does not know, sent again without
// its condition).
var errRetryNow = errors.New("to be repeated")

// errMismatch marks an answer that contradicts its request.
var errMismatch = errors.New("the answer does not match the request")

// failureKind classifies an operation's error for the retry policy.
type failureKind int

const (
	permanent failureKind = iota // fails the operation at once
	transient                    // retried within the time budget
	mismatch                     // retried mismatchAttempts times
)

// classify decides whether err is worth repeating the operation for.
func classify(err error) failureKind {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return permanent
	}
	var body bodyError
	if errors.As(err, &body) {
		return permanent
	}
	if errors.Is(err, errMismatch) {
		return mismatch
	}
	if errors.Is(err, errRetryNow) {
		return transient
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && resp.StatusCode != 0 {
		switch resp.Code {
		case "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "RequestTimeoutException":
			return transient
		}
		switch resp.StatusCode {
		case http.StatusRequestTimeout, http.StatusTooManyRequests,
			http.StatusInternalServerError, http.StatusBadGateway,
			http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return transient
		}
		return permanent
	}
	if retry.NetworkTransient(err) {
		return transient
	}
	return permanent
}

// retryState is the store's memory of failures (retry.Budget) and its
// backoff, which tests shorten.
type retryState struct {
	retry.Budget
	backoff func(attempt int) time.Duration
}

// retrying runs op until it succeeds, fails for good, or its failures
// have lasted s.opt.RetryFor.
func (s *Store) retrying(ctx context.Context, op func(context.Context) error) error {
	attempt, mismatches := 0, 0
	for {
		err := op(ctx)
		kind := classify(err)
		if kind != transient {
			s.retry.Answered()
		}
		if err == nil || kind == permanent || ctx.Err() != nil {
			return err
		}
		if kind == mismatch {
			if mismatches++; mismatches >= mismatchAttempts {
				return fmt.Errorf("%w (tried %d times)", err, mismatches)
			}
		}
		if err := s.wait(ctx, err, attempt); err != nil {
			return err
		}
		attempt++
	}
}

// wait sleeps before attempt+1 of an operation that failed with err, or
// returns an error when the store's retry budget is spent.
func (s *Store) wait(ctx context.Context, err error, attempt int) error {
	left := s.opt.RetryFor - time.Since(s.retry.FailingSince())
	if left <= 0 {
		return &retry.ExhaustedError{Err: err, After: s.opt.RetryFor}
	}
	d := min(s.retry.backoff(attempt), left)
	s.noticeRetry(err, d, left)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// noticeRetry tells the user that an operation waits to be retried, at
// most every noticeEvery.
func (s *Store) noticeRetry(err error, wait, left time.Duration) {
	if s.opt.Logf == nil {
		return
	}
	due := s.retry.NoticeDue(left)
	if due {
		s.opt.Logf("S3 endpoint %s: %v; retrying in %s, for up to %s more (-retry-for)", s.loc.endpoint, shortError(err),
			retry.RoundDuration(wait), retry.RoundDuration(left))
	}
}

// shortError reduces an error to what a notice needs.
func shortError(err error) string {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && resp.StatusCode != 0 {
		if resp.Code != "" {
			return fmt.Sprintf("%d %s (%s)", resp.StatusCode, http.StatusText(resp.StatusCode), resp.Code)
		}
		return fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return opErr.Op + ": " + opErr.Err.Error()
	}
	return err.Error()
}
