package mem

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return New() })
}

func TestLocation(t *testing.T) {
	a, b := New(), New()
	if !strings.HasPrefix(a.Location(), "mem://") || len(a.Location()) <= len("mem://") {
		t.Errorf("Location() = %q, want mem://<id>", a.Location())
	}
	if a.Location() == b.Location() {
		t.Errorf("two stores share location %q", a.Location())
	}
	if got := a.Describe(context.Background())["type"]; got != "memory" {
		t.Errorf(`Describe()["type"] = %q, want "memory"`, got)
	}
}

// TestCopies checks that the store keeps its own copy of what it is given,
// so that a caller reusing its buffer cannot change stored objects.
func TestCopies(t *testing.T) {
	ctx := context.Background()
	s := New()
	config := []byte("config")
	if err := s.Create(ctx, config); err != nil {
		t.Fatal(err)
	}
	config[0] = 'X'
	got, err := s.Open(ctx)
	if err != nil || string(got) != "config" {
		t.Fatalf("Open after changing the caller's config = %q, %v; want %q", got, err, "config")
	}
	got[0] = 'Y'
	if again, _ := s.Open(ctx); string(again) != "config" {
		t.Fatalf("changing Open's result changed the stored config to %q", again)
	}
}

func TestCreateAfterPut(t *testing.T) {
	ctx := context.Background()
	s := New()
	if err := s.Put(ctx, storage.KindPack, "ab", storage.BytesBody([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, nil); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("Create on a store holding objects = %v, want ErrExists", err)
	}
}

func TestPutSameNameOtherSize(t *testing.T) {
	ctx := context.Background()
	s := New()
	if err := s.Put(ctx, storage.KindPack, "ab", storage.BytesBody([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	err := s.Put(ctx, storage.KindPack, "ab", storage.BytesBody([]byte("xy")))
	if !errors.Is(err, storage.ErrExists) {
		t.Fatalf("Put of an existing pack with another size = %v, want ErrExists", err)
	}
}
