package oci

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/internal/retry"
)

// One retry policy covers every registry operation. It repeats a whole
// operation (a manifest fetch, a blob upload from its POST, a ranged
// read), never a single HTTP request below it: a retried upload then
// starts a new upload session instead of resuming one the registry may
// have forgotten (a restart, a proxy answering 502 meanwhile), which
// ends in 404 or 416. Failures that pass with time (the registry down or
// restarting, a proxy without a backend, 429, 5xx, resets, timeouts) are
// retried with backoff and jitter for up to Options.RetryFor, counted
// from the operation's first failure. Bytes that do not match their
// digest are retried a few times only: a damaged transfer passes, damaged
// storage does not.

const (
	// DefaultRetryFor is Options.RetryFor's default: long enough to ride
	// out a registry restart or upgrade, short enough for a cron job to
	// fail the same night.
	DefaultRetryFor = 10 * time.Minute
	// corruptAttempts is how many times bytes that fail their digest are
	// read before they are reported as corrupt.
	corruptAttempts = 5
	// maxRetryAfter caps a registry's Retry-After.
	maxRetryAfter = 5 * time.Minute
)

// errRetryRead marks a failure the operation itself judged worth
// repeating: a body cut off, an upload session gone.
type errRetryRead struct{ err error }

func (e errRetryRead) Error() string { return e.err.Error() }
func (e errRetryRead) Unwrap() error { return e.err }

// failureKind classifies an operation's error for the retry policy.
type failureKind int

const (
	permanent failureKind = iota // fails the operation at once
	transient                    // retried within the time budget
	mismatch                     // bytes that failed their digest: retried corruptAttempts times
)

// classify decides whether err is worth repeating the operation for.
func classify(err error) failureKind {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return permanent
	}
	// What Put was given failed to read: the same bytes would again.
	var body bodyError
	if errors.As(err, &body) {
		return permanent
	}
	if errors.Is(err, storage.ErrCorrupt) || errors.Is(err, errDigestMismatch) {
		return mismatch
	}
	var retryable errRetryRead
	if errors.As(err, &retryable) {
		return transient
	}
	var resp *errcode.ErrorResponse
	if errors.As(err, &resp) {
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

// retrying runs op until it succeeds, fails for good, or its failures
// have lasted s.opt.RetryFor (corruptAttempts reads, for bytes that fail
// their digest). op must make its requests with the context it is
// given, which carries the Retry-After of a 429 back to the loop.
func (s *Store) retrying(ctx context.Context, op func(context.Context) error) error {
	hint := &retryAfterHint{}
	ctx = context.WithValue(ctx, retryAfterKey{}, hint)
	attempt, mismatches := 0, 0
	for {
		err := op(ctx)
		kind := classify(err)
		if kind != transient {
			s.budget.Answered()
		}
		if err == nil || kind == permanent || ctx.Err() != nil {
			return err
		}
		if kind == mismatch {
			if mismatches++; mismatches >= corruptAttempts {
				return fmt.Errorf("registry %s: %w (read %d times)", s.loc.host, err, mismatches)
			}
		}
		left := s.opt.RetryFor - time.Since(s.budget.FailingSince())
		if left <= 0 {
			return &retry.ExhaustedError{Err: err, After: s.opt.RetryFor}
		}
		wait := s.backoff(attempt)
		if ra, ok := hint.take(); ok {
			wait = ra
		}
		wait = min(wait, left)
		s.noticeRetry(err, wait, left)
		attempt++
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// retryNote is what an error that exhausted the retry budget adds to a
// message that does not quote the error itself.
func retryNote(err error) string {
	var e *retry.ExhaustedError
	if errors.As(err, &e) {
		return e.Note()
	}
	return ""
}

// noticeRetry tells the user that an operation waits to be retried, at
// most every noticeEvery: a restart seen by four uploads is one notice.
func (s *Store) noticeRetry(err error, wait, left time.Duration) {
	if s.opt.Logf == nil {
		return
	}
	due := s.budget.NoticeDue(left)
	if due {
		s.opt.Logf("registry %s: %v; retrying in %s, for up to %s more (-retry-for)", s.loc.host, shortError(err),
			retry.RoundDuration(wait), retry.RoundDuration(left))
	}
}

// shortError reduces an error to what a notice needs: the status of an
// answer, or the innermost cause of a transport failure.
func shortError(err error) string {
	var resp *errcode.ErrorResponse
	if errors.As(err, &resp) {
		return fmt.Sprintf("%s %s: %d %s", resp.Method, resp.URL.Path, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return opErr.Op + ": " + opErr.Err.Error()
	}
	return err.Error()
}

// retryAfterKey is the context key of an operation's retryAfterHint.
type retryAfterKey struct{}

// retryAfterHint carries a Retry-After from the transport, which sees
// the answer's headers, up to the retry loop, which sees only oras-go's
// error.
type retryAfterHint struct {
	mu   sync.Mutex
	wait time.Duration
	set  bool
}

func (h *retryAfterHint) put(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.wait, h.set = d, true
}

func (h *retryAfterHint) take() (time.Duration, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.wait, h.set
	h.wait, h.set = 0, false
	return d, ok
}

// retryAfterRecorder passes the Retry-After of a 429 or 503 answer to the
// operation that made the request.
type retryAfterRecorder struct{ next http.RoundTripper }

func (t retryAfterRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return resp, err
	}
	if hint, ok := req.Context().Value(retryAfterKey{}).(*retryAfterHint); ok {
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			hint.put(d)
		}
	}
	return resp, err
}

// parseRetryAfter reads a Retry-After header, in seconds or as an HTTP
// date, capped at maxRetryAfter.
func parseRetryAfter(h string, now time.Time) (time.Duration, bool) {
	if h == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(h); err == nil && secs >= 0 {
		return min(time.Duration(secs)*time.Second, maxRetryAfter), true
	}
	if t, err := http.ParseTime(h); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter), true
	}
	return 0, false
}
