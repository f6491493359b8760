package main

import (
	"os"
	"path/filepath"
	"testing"
)

// primeRestoreDir leaves the restore directory as it found it, and says
// so when it cannot write there.
func TestPrimeRestoreDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kept"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := primeRestoreDir(dir, 3<<20+5); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "kept" {
		t.Errorf("after priming, the directory holds %v, want only kept", entries)
	}
	if err := primeRestoreDir(filepath.Join(dir, "missing"), 1); err == nil {
		t.Error("priming a missing directory succeeded")
	}
}
