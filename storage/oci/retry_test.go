package oci

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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

func fakeResponse(status int, header ...string) *http.Response {
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return &http.Response{StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), Header: h}
}

func TestRetryPolicy(t *testing.T) {
	const host = "registry.example.com:5000"
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	inOneMinute := time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)
	anHourAgo := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		name     string
		attempt  int
		resp     *http.Response
		err      error
		min, max time.Duration // the wait; max < 0 means no retry
		wantErr  bool
		logged   bool // the user must be told, naming the host
	}{
		{name: "429 Retry-After seconds", resp: fakeResponse(429, "Retry-After", "7"), min: 7 * time.Second, max: 7 * time.Second, logged: true},
		{name: "429 Retry-After zero", resp: fakeResponse(429, "Retry-After", "0"), min: 0, max: 0, logged: true},
		{name: "429 Retry-After HTTP-date", resp: fakeResponse(429, "Retry-After", inOneMinute), min: 55 * time.Second, max: time.Minute, logged: true},
		{name: "429 Retry-After date passed", resp: fakeResponse(429, "Retry-After", anHourAgo), min: 0, max: 0, logged: true},
		{name: "429 Retry-After capped", resp: fakeResponse(429, "Retry-After", "86400"), min: maxRetryAfter, max: maxRetryAfter, logged: true},
		{name: "429 Retry-After garbage", resp: fakeResponse(429, "Retry-After", "soon"), min: 200 * time.Millisecond, max: 300 * time.Millisecond, logged: true},
		{name: "429 without Retry-After", resp: fakeResponse(429), min: 200 * time.Millisecond, max: 300 * time.Millisecond, logged: true},
		{name: "503", resp: fakeResponse(503), min: 200 * time.Millisecond, max: 300 * time.Millisecond},
		{name: "503 later attempt", attempt: 3, resp: fakeResponse(503), min: 1600 * time.Millisecond, max: 2400 * time.Millisecond, logged: true},
		{name: "503 Retry-After", resp: fakeResponse(503, "Retry-After", "3"), min: 3 * time.Second, max: 3 * time.Second, logged: true},
		{name: "503 backoff capped", attempt: 7, resp: fakeResponse(503), min: 25 * time.Second, max: 30 * time.Second, logged: true},
		{name: "500", resp: fakeResponse(500), min: 200 * time.Millisecond, max: 300 * time.Millisecond},
		{name: "connection reset", err: reset, min: 200 * time.Millisecond, max: 300 * time.Millisecond},
		{name: "unexpected EOF", err: io.ErrUnexpectedEOF, min: 200 * time.Millisecond, max: 300 * time.Millisecond},
		{name: "404", resp: fakeResponse(404), max: -1},
		{name: "401", resp: fakeResponse(401), max: -1},
		{name: "200", resp: fakeResponse(200), max: -1},
		{name: "other error", err: errors.New("tls: bad certificate"), max: -1, wantErr: true},
		{name: "attempt limit", attempt: maxRetries, resp: fakeResponse(503), max: -1},
		{name: "attempt limit 429", attempt: maxRetries, resp: fakeResponse(429, "Retry-After", "1"), max: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log logRecorder
			p := retryPolicy{host: host, logf: log.logf}
			wait, err := p.Retry(tt.attempt, tt.resp, tt.err)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Retry error = %v, want error %v", err, tt.wantErr)
			}
			if tt.max < 0 {
				if wait >= 0 {
					t.Fatalf("Retry = %s, want no retry (negative)", wait)
				}
				if len(log.lines) > 0 {
					t.Errorf("Retry logged %q without retrying", log.String())
				}
				return
			}
			if wait < tt.min || wait > tt.max {
				t.Errorf("Retry waits %s, want %s to %s", wait, tt.min, tt.max)
			}
			if tt.logged {
				if len(log.lines) != 1 || !strings.Contains(log.lines[0], host) {
					t.Errorf("Retry logged %q, want one message naming %s", log.String(), host)
				}
				if tt.resp != nil && !strings.Contains(log.String(), fmt.Sprint(tt.resp.StatusCode)) {
					t.Errorf("Retry logged %q, want it to give the status %d", log.String(), tt.resp.StatusCode)
				}
			}
		})
	}

	// A nil Logf is allowed.
	if wait, err := (retryPolicy{host: host}).Retry(0, fakeResponse(429, "Retry-After", "2"), nil); err != nil || wait != 2*time.Second {
		t.Errorf("Retry without Logf = %s, %v; want 2s", wait, err)
	}
}
