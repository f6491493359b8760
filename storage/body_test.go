package storage

import (
	"io"
	"strings"
	"testing"
)

func TestBody(t *testing.T) {
	read := func(b Body) string {
		t.Helper()
		got, err := io.ReadAll(b.Reader())
		if err != nil {
			t.Fatalf("reading a body: %v", err)
		}
		return string(got)
	}

	var zero Body
	if zero.Size() != 0 || read(zero) != "" {
		t.Errorf("the zero Body has size %d and bytes %q, want empty", zero.Size(), read(zero))
	}

	b := BytesBody([]byte("hello"))
	if b.Size() != 5 || read(b) != "hello" {
		t.Errorf("BytesBody(hello) has size %d and bytes %q", b.Size(), read(b))
	}

	// A body is its size: bytes past it are not part of it.
	b = NewBody(strings.NewReader("hello, world"), 5)
	if b.Size() != 5 || read(b) != "hello" {
		t.Errorf("NewBody of 5 of 12 bytes has size %d and bytes %q", b.Size(), read(b))
	}

	// Readers are independent, so every attempt of an upload starts at
	// the first byte.
	r1 := b.Reader()
	if _, err := io.CopyN(io.Discard, r1, 3); err != nil {
		t.Fatal(err)
	}
	if got := read(b); got != "hello" {
		t.Errorf("a second reader after the first read 3 bytes returned %q", got)
	}

	defer func() {
		if recover() == nil {
			t.Error("NewBody with a negative size did not panic")
		}
	}()
	NewBody(strings.NewReader("x"), -1)
}
