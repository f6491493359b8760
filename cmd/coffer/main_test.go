package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestProfilesFromEnvironment checks that each profile variable makes its
// file, in the format its tool reads: pprof's gzipped protocol buffers,
// and the execution trace's header.
func TestProfilesFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	want := map[string][]byte{
		"COFFER_CPUPROFILE":  {0x1f, 0x8b},
		"COFFER_MEMPROFILE":  {0x1f, 0x8b},
		"COFFER_PEAKPROFILE": {0x1f, 0x8b},
		"COFFER_TRACE":       []byte("go 1."),
	}
	for env := range want {
		t.Setenv(env, filepath.Join(dir, env))
	}
	stop, err := startProfiles()
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for env, magic := range want {
		b, err := os.ReadFile(filepath.Join(dir, env))
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		if !bytes.HasPrefix(b, magic) {
			t.Errorf("%s: file starts with %q, want %q", env, b[:min(len(b), 8)], magic)
		}
	}

	t.Setenv("COFFER_TRACE", filepath.Join(dir, "missing", "trace"))
	t.Setenv("COFFER_CPUPROFILE", "")
	if _, err := startProfiles(); err == nil {
		t.Error("startProfiles wrote a trace into a directory that does not exist")
	}
}
