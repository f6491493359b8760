package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{0: 250 * time.Millisecond, 1: 500 * time.Millisecond, 2: time.Second, 3: 2 * time.Second, 6: MaxBackoff, 30: MaxBackoff, 1000: MaxBackoff} {
		for range 20 {
			if got := Backoff(n); got < want*8/10 || got > want*12/10 {
				t.Fatalf("Backoff(%d) = %s, want %s ±20%%", n, got, want)
			}
		}
	}
}

func TestNetworkTransient(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{"reset", fmt.Errorf("put: %w", syscall.ECONNRESET), true},
		{"cut body", io.ErrUnexpectedEOF, true},
		{"closed keep-alive", io.EOF, true},
		{"timeout", &net.DNSError{IsTimeout: true}, true},
		{"name server down", &net.DNSError{Err: "server misbehaving"}, true},
		{"no such host", &net.DNSError{Err: "no such host", IsNotFound: true}, false},
		{"cancelled", context.Canceled, false},
		{"cancelled while reset", errors.Join(context.Canceled, syscall.ECONNRESET), false},
		{"other", errors.New("401 unauthorized"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		if got := NetworkTransient(tt.err); got != tt.want {
			t.Errorf("NetworkTransient(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// A budget counts from the first failure in a row; an answer resets it.
// Notices are spaced.
func TestBudget(t *testing.T) {
	var b Budget
	first := b.FailingSince()
	time.Sleep(5 * time.Millisecond)
	if again := b.FailingSince(); !again.Equal(first) {
		t.Fatalf("a second failure moved the budget's start from %v to %v", first, again)
	}
	b.Answered()
	if after := b.FailingSince(); !after.After(first) {
		t.Fatalf("after an answer the budget still starts at %v", after)
	}
	if !b.NoticeDue(time.Minute) {
		t.Fatal("the first retry is not told")
	}
	if b.NoticeDue(time.Minute) {
		t.Fatal("a second retry right after the first is told too")
	}
	var c Budget
	if c.NoticeDue(50 * time.Millisecond) {
		t.Fatal("a retry in the budget's last 100 ms is told")
	}
}

func TestExhaustedError(t *testing.T) {
	cause := syscall.ECONNREFUSED
	err := fmt.Errorf("storing: %w", &ExhaustedError{Err: cause, After: 30 * time.Second})
	if !errors.Is(err, cause) {
		t.Errorf("%v does not match its cause", err)
	}
	want := "storing: connection refused (still failing after retrying for 30s; -retry-for sets how long)"
	if err.Error() != want {
		t.Errorf("message %q, want %q", err.Error(), want)
	}
}
