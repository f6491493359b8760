package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/internal/retry"
)

func TestClassify(t *testing.T) {
	answer := func(status int, code string) error {
		return fmt.Errorf("op: %w", minio.ErrorResponse{StatusCode: status, Code: code})
	}
	tests := []struct {
		name string
		err  error
		want failureKind
	}{
		{"nil", nil, permanent},
		{"cancelled", context.Canceled, permanent},
		{"deadline", context.DeadlineExceeded, permanent},
		{"body", bodyError{errors.New("disk on fire")}, permanent},
		{"body ended", bodyError{io.ErrUnexpectedEOF}, permanent},
		{"mismatch", fmt.Errorf("x: %w", errMismatch), mismatch},
		{"retry now", fmt.Errorf("x: %w", errRetryNow), transient},
		{"500", answer(500, "InternalError"), transient},
		{"502 html", answer(502, ""), transient},
		{"503 SlowDown", answer(503, "SlowDown"), transient},
		{"429", answer(429, ""), transient},
		{"400 RequestTimeout", answer(400, "RequestTimeout"), transient},
		{"403 AccessDenied", answer(403, "AccessDenied"), permanent},
		{"403 SignatureDoesNotMatch", answer(403, "SignatureDoesNotMatch"), permanent},
		{"404 NoSuchKey", answer(404, "NoSuchKey"), permanent},
		{"404 NoSuchBucket", answer(404, "NoSuchBucket"), permanent},
		{"412", answer(412, "PreconditionFailed"), permanent},
		{"416", answer(416, "InvalidRange"), permanent},
		{"400 BadDigest", answer(400, "BadDigest"), permanent},
		{"refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, transient},
		{"reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, transient},
		{"unexpected EOF", io.ErrUnexpectedEOF, transient},
		{"no such host", &net.DNSError{Err: "no such host", Name: "s3.example", IsNotFound: true}, permanent},
		{"DNS timeout", &net.DNSError{Err: "timeout", Name: "s3.example", IsTimeout: true}, transient},
		{"not found sentinel", storage.ErrNotFound, permanent},
	}
	for _, tt := range tests {
		if got := classify(tt.err); got != tt.want {
			t.Errorf("classify(%s: %v) = %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
}

// The budget counts from the store's first failure in a row, so that
// operations starting during an outage do not each get a fresh one; an
// answer resets it.
func TestRetryingBudget(t *testing.T) {
	s := &Store{opt: Options{RetryFor: 300 * time.Millisecond}, retry: retryState{backoff: func(int) time.Duration { return 20 * time.Millisecond }}}
	down := &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}
	start := time.Now()
	calls := 0
	err := s.retrying(t.Context(), func(context.Context) error { calls++; return down })
	var exhausted *retry.ExhaustedError
	if !errors.As(err, &exhausted) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("retrying an outage = %v; want a retry.ExhaustedError wrapping the cause", err)
	}
	if took := time.Since(start); took < 250*time.Millisecond || took > 2*time.Second || calls < 5 {
		t.Fatalf("retried %d times over %s; want a few, for about 300ms", calls, took)
	}
	// A second operation in the same outage gets no new budget.
	calls = 0
	s.retrying(t.Context(), func(context.Context) error { calls++; return down })
	if calls > 2 {
		t.Errorf("a second operation during the outage tried %d times", calls)
	}
	// An answer (even a refusal) ends the outage.
	if err := s.retrying(t.Context(), func(context.Context) error {
		return minio.ErrorResponse{StatusCode: http.StatusForbidden, Code: "AccessDenied"}
	}); err == nil {
		t.Fatal("a 403 was not returned")
	}
	calls = 0
	err = s.retrying(t.Context(), func(context.Context) error {
		if calls++; calls < 3 {
			return down
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("after an answer, a short outage = %v after %d calls; want success after 3", err, calls)
	}
	// Answers that contradict the request are tried a few times only.
	calls = 0
	err = s.retrying(t.Context(), func(context.Context) error { calls++; return errMismatch })
	if !errors.Is(err, errMismatch) || calls != mismatchAttempts {
		t.Errorf("a mismatch = %v after %d calls; want it after %d", err, calls, mismatchAttempts)
	}
}
