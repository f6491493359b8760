// Package retry is what the network stores (storage/oci, storage/s3)
// share of their retry policy, so that -retry-for means one thing for
// every store: the backoff between attempts, which transport failures
// pass with time, and the budget that one outage spends however many
// operations run into it. Each store keeps its own loop, since what is
// worth repeating in its answers (a registry's error codes, S3's) and
// how it repeats it differ.
package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"syscall"
	"time"
)

const (
	// MaxBackoff caps the wait between attempts, so that a store back
	// from an outage is used again within seconds.
	MaxBackoff = 15 * time.Second
	// NoticeEvery spaces the notices of retries, which operations
	// running in parallel would otherwise repeat.
	NoticeEvery = 5 * time.Second
)

// Backoff returns the wait before attempt n+1 (n from 0): 250 ms
// doubling, capped at MaxBackoff, with ±20% jitter so that parallel
// operations do not return in step.
func Backoff(n int) time.Duration {
	d := 250 * time.Millisecond
	for i := 0; i < n && d < MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, MaxBackoff)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// NetworkTransient reports whether err is a transport failure that
// passes with time: a refused, reset or timed-out connection, a name
// server that did not answer. A name that does not exist is a typo, not
// an outage; a cancelled context is the caller's.
func NetworkTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return !dnsErr.IsNotFound
	}
	var netErr net.Error
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		errors.Is(err, syscall.ETIMEDOUT) ||
		// A bare EOF is a keep-alive connection the server closed as the
		// request went out (seen from registry 2.8 under load).
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		(errors.As(err, &netErr) && netErr.Timeout())
}

// Budget is a store's memory of failures: since when its operations have
// failed in a row, and when the user was last told. The zero Budget is
// ready to use; it is safe for concurrent use.
type Budget struct {
	mu         sync.Mutex
	failing    time.Time // zero while the store answers
	lastNotice time.Time
}

// FailingSince returns when the store started failing, now if it had
// not: every operation's budget counts from there, so that one outage
// costs -retry-for however many operations start during it.
func (b *Budget) FailingSince() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failing.IsZero() {
		b.failing = time.Now()
	}
	return b.failing
}

// Answered records that the store answered (a success, or an error that
// is not an outage): the next failure starts a new budget.
func (b *Budget) Answered() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failing = time.Time{}
}

// NoticeDue reports whether a retry with left of the budget remaining
// is to be told to the user: at most every NoticeEvery, and not in the
// budget's last moments.
func (b *Budget) NoticeDue(left time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if time.Since(b.lastNotice) < NoticeEvery || left < 100*time.Millisecond {
		return false
	}
	b.lastNotice = time.Now()
	return true
}

// ExhaustedError is an operation that kept failing for the whole retry
// budget.
type ExhaustedError struct {
	Err   error
	After time.Duration
}

func (e *ExhaustedError) Error() string { return e.Err.Error() + e.Note() }

// Note is what the error adds to its cause, for a message that does not
// quote the cause itself.
func (e *ExhaustedError) Note() string {
	return fmt.Sprintf(" (still failing after retrying for %s; -retry-for sets how long)", e.After.Round(time.Second))
}

func (e *ExhaustedError) Unwrap() error { return e.Err }

// RoundDuration rounds d for a message: to 100 ms below 10 s, else to
// the second.
func RoundDuration(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}
