package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
	buildOut  []byte
)

// CofferBinary builds cmd/coffer once per test process and returns the
// path of the binary, for tests that need a real process (signals,
// kill -9, other users).
func CofferBinary(t testing.TB) string {
	t.Helper()
	SkipInShort(t, "runs the coffer binary")
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "coffer-bin-*")
		if err != nil {
			buildErr = err
			return
		}
		// World-readable so tests can run it as another user.
		if err := os.Chmod(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "coffer")
		cmd := exec.Command("go", "build", "-o", buildPath, "github.com/cofferhq/coffer/cmd/coffer")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("building coffer: %v\n%s", buildErr, buildOut)
	}
	return buildPath
}
