package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/internal/retry"
)

// logRecorder collects what a store or policy tells the user.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// errorResponse is what oras-go returns for an answer with status.
func errorResponse(status int) error {
	u, _ := url.Parse("http://registry.example.com/v2/r/blobs/uploads/")
	return &errcode.ErrorResponse{Method: http.MethodPut, URL: u, StatusCode: status}
}

func TestClassify(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name string
		err  error
		want failureKind
	}{
		{"connection refused", refused, transient},
		{"connection refused, wrapped", fmt.Errorf("pushing: %w", refused), transient},
		{"connection reset", reset, transient},
		{"unexpected EOF", io.ErrUnexpectedEOF, transient},
		{"bare EOF", fmt.Errorf("Put: %w", io.EOF), transient},
		{"DNS timeout", &net.DNSError{Err: "i/o timeout", Name: "r.example", IsTimeout: true}, transient},
		{"DNS server failure", &net.DNSError{Err: "server misbehaving", Name: "r.example", IsTemporary: true}, transient},
		{"DNS no such host", &net.DNSError{Err: "no such host", Name: "r.exmaple", IsNotFound: true}, permanent},
		{"408", errorResponse(408), transient},
		{"429", errorResponse(429), transient},
		{"500", errorResponse(500), transient},
		{"502", errorResponse(502), transient},
		{"503", errorResponse(503), transient},
		{"504", errorResponse(504), transient},
		{"501", errorResponse(501), permanent},
		{"400", errorResponse(400), permanent},
		{"401", errorResponse(401), permanent},
		{"403", errorResponse(403), permanent},
		{"404", errorResponse(404), permanent},
		{"413", errorResponse(413), permanent},
		{"upload session gone", errRetryRead{errorResponse(404)}, transient},
		{"bytes failing their digest", fmt.Errorf("blob: %w", storage.ErrCorrupt), mismatch},
		{"manifest failing its digest", fmt.Errorf("%w sha256:ab", errDigestMismatch), mismatch},
		{"canceled", fmt.Errorf("op: %w", context.Canceled), permanent},
		{"deadline", context.DeadlineExceeded, permanent},
		{"body ended early", &url.Error{Op: "Put", URL: "http://r.example/v2", Err: bodyError{io.ErrUnexpectedEOF}}, permanent},
		{"body failed", fmt.Errorf("pushing: %w", bodyError{syscall.EIO}), permanent},
		{"certificate", errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority"), permanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.err); got != tt.want {
				t.Errorf("classify(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		h    string
		want time.Duration
		ok   bool
	}{
		{"7", 7 * time.Second, true},
		{"0", 0, true},
		{now.Add(time.Minute).Format(http.TimeFormat), time.Minute, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"86400", maxRetryAfter, true},
		{"soon", 0, false},
		{"-3", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.h, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseRetryAfter(%q) = %s, %v; want %s, %v", tt.h, got, ok, tt.want, tt.ok)
		}
	}
}

// retryStore is a Store with only what retrying uses.
func retryStore(retryFor time.Duration, log *logRecorder) *Store {
	return &Store{loc: location{host: "registry.example.com:5000"}, opt: Options{RetryFor: retryFor, Logf: log.logf},
		backoff: func(int) time.Duration { return 20 * time.Millisecond }}
}

// TestRetryingBudget: transient failures are retried until they have
// lasted RetryFor, then the error says so; a permanent one fails at once;
// bytes that fail their digest are read corruptAttempts times, however
// long the budget.
func TestRetryingBudget(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	t.Run("outage longer than the budget", func(t *testing.T) {
		var log logRecorder
		s := retryStore(300*time.Millisecond, &log)
		calls := 0
		start := time.Now()
		err := s.retrying(t.Context(), func(context.Context) error { calls++; return refused })
		took := time.Since(start)
		var exhausted *retry.ExhaustedError
		if !errors.As(err, &exhausted) || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("retrying = %v, want a retry.ExhaustedError wrapping ECONNREFUSED", err)
		}
		if took < 300*time.Millisecond || took > 2*time.Second {
			t.Errorf("retrying gave up after %s, want about the 300ms budget", took)
		}
		if calls < 5 {
			t.Errorf("op called %d times in 300ms with 20ms waits, want more", calls)
		}
		if !strings.Contains(err.Error(), "-retry-for") {
			t.Errorf("error %q does not name -retry-for", err)
		}
		if len(log.lines) != 1 || !strings.Contains(log.lines[0], "registry.example.com:5000") || !strings.Contains(log.lines[0], "connection refused") {
			t.Errorf("notices = %q, want one (spaced %s apart) naming the registry and the cause", log.String(), retry.NoticeEvery)
		}
	})
	t.Run("outage shorter than the budget", func(t *testing.T) {
		var log logRecorder
		s := retryStore(time.Minute, &log)
		calls := 0
		err := s.retrying(t.Context(), func(context.Context) error {
			if calls++; calls < 4 {
				return errorResponse(http.StatusBadGateway)
			}
			return nil
		})
		if err != nil || calls != 4 {
			t.Errorf("retrying = %v after %d calls, want success on the 4th", err, calls)
		}
	})
	t.Run("permanent", func(t *testing.T) {
		s := retryStore(time.Minute, &logRecorder{})
		calls := 0
		err := s.retrying(t.Context(), func(context.Context) error { calls++; return errorResponse(http.StatusForbidden) })
		if err == nil || calls != 1 {
			t.Errorf("retrying a 403 = %v after %d calls, want it at once", err, calls)
		}
	})
	t.Run("digest mismatch", func(t *testing.T) {
		s := retryStore(time.Hour, &logRecorder{})
		calls := 0
		err := s.retrying(t.Context(), func(context.Context) error { calls++; return fmt.Errorf("blob: %w", storage.ErrCorrupt) })
		if !errors.Is(err, storage.ErrCorrupt) || calls != corruptAttempts {
			t.Errorf("retrying = %v after %d calls, want ErrCorrupt after %d", err, calls, corruptAttempts)
		}
	})
	t.Run("canceled while waiting", func(t *testing.T) {
		s := retryStore(time.Hour, &logRecorder{})
		s.backoff = func(int) time.Duration { return time.Hour }
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		err := s.retrying(ctx, func(context.Context) error { return refused })
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("retrying = %v, want the context's error", err)
		}
	})
}

// TestRetryAfterHonoured: a 429's Retry-After, seen by the transport,
// sets the wait of the operation's retry.
func TestRetryAfterHonoured(t *testing.T) {
	var tries atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tries.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	var log logRecorder
	s := retryStore(time.Minute, &log)
	client := &http.Client{Transport: retryAfterRecorder{http.DefaultTransport}}
	start := time.Now()
	err := s.retrying(t.Context(), func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v2/", nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return &errcode.ErrorResponse{Method: req.Method, URL: req.URL, StatusCode: resp.StatusCode}
		}
		return nil
	})
	if err != nil || tries.Load() != 2 {
		t.Fatalf("retrying = %v after %d requests, want success on the 2nd", err, tries.Load())
	}
	if took := time.Since(start); took < time.Second || took > 3*time.Second {
		t.Errorf("retrying took %s, want the 1s Retry-After (not the 20ms backoff)", took)
	}
	if !strings.Contains(log.String(), "429") || !strings.Contains(log.String(), "retrying in 1s") {
		t.Errorf("notice %q, want the status and the 1s wait", log.String())
	}
}
