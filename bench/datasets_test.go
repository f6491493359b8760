package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestGenerateDeterministic checks that the parallel writers give the same
// names and bytes from the same seed, and other bytes from another seed.
func TestGenerateDeterministic(t *testing.T) {
	for _, tc := range []struct {
		name   string
		files  int
		widest string
		wide   int
	}{
		{"many-small", 2500, "wide", 1000},
		{"million", 3000, "wide", 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			a, err := generate(tc.name, filepath.Join(dir, "a"), true, 1)
			if err != nil {
				t.Fatal(err)
			}
			b, err := generate(tc.name, filepath.Join(dir, "b"), true, 1)
			if err != nil {
				t.Fatal(err)
			}
			c, err := generate(tc.name, filepath.Join(dir, "c"), true, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Files) != tc.files || a.Widest != tc.widest || a.Entries != tc.wide {
				t.Fatalf("got %d files, widest %s (%d entries); want %d, %s (%d)", len(a.Files), a.Widest, a.Entries, tc.files, tc.widest, tc.wide)
			}
			if a.Bytes != b.Bytes || len(a.Files) != len(b.Files) {
				t.Fatalf("same seed, different datasets: %d/%d bytes, %d/%d files", a.Bytes, b.Bytes, len(a.Files), len(b.Files))
			}
			differ := false
			for i, f := range a.Files {
				if b.Files[i] != f {
					t.Fatalf("same seed, file %d is %s and %s", i, f, b.Files[i])
				}
				x, err := os.ReadFile(filepath.Join(a.Dir, f))
				if err != nil {
					t.Fatal(err)
				}
				y, err := os.ReadFile(filepath.Join(b.Dir, f))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(x, y) {
					t.Fatalf("same seed, %s differs", f)
				}
				z, err := os.ReadFile(filepath.Join(c.Dir, f))
				differ = differ || err != nil || !bytes.Equal(x, z)
			}
			if !differ {
				t.Fatal("another seed gave the same bytes")
			}
		})
	}
}
