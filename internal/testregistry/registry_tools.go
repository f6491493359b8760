package testregistry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
)

// ToolBinEnv names a directory that already holds the pinned "registry"
// (CNCF Distribution v3), "oras" and "versitygw" (an S3 server) binaries
// built from tools/go.mod, as .ci/run prepares. When it is unset, the
// first test that needs a tool builds them all (see toolBin).
const ToolBinEnv = "COFFER_TOOLBIN"

// Registry28Binary is where Debian's docker-registry package (CNCF
// Distribution 2.8) installs its program.
const Registry28Binary = "/usr/bin/docker-registry"

// The packages tools/go.mod pins, built by toolBin.
var toolPackages = map[string]string{
	"registry":  "github.com/distribution/distribution/v3/cmd/registry",
	"oras":      "oras.land/oras/cmd/oras",
	"versitygw": "github.com/versity/versitygw/cmd/versitygw",
}

var (
	toolsOnce sync.Once
	toolsDir  string
	toolsErr  error
)

// toolBin returns the path of a pinned tool ("registry", "oras" or
// "versitygw"). With $COFFER_TOOLBIN set it must be there (a missing binary fails the
// test: the variable promised it). Otherwise the tools are built once
// per test process, with the go command, into a per-user cache directory
// keyed by tools/go.mod, tools/go.sum and the Go version, so that later
// test processes (one per package) reuse them instead of each building
// ~100 MB of binaries into a temporary directory it cannot clean up. If
// they cannot be built (no go command, no module source, no network for
// a first download), the test is skipped loudly.
func toolBin(t testing.TB, name string) string {
	t.Helper()
	if _, ok := toolPackages[name]; !ok {
		t.Fatalf("testutil: unknown tool %q", name)
	}
	if dir := os.Getenv(ToolBinEnv); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("testutil: $%s=%s but it holds no %s: %v", ToolBinEnv, dir, name, err)
		}
		return p
	}
	toolsOnce.Do(func() { toolsDir, toolsErr = buildTools() })
	if toolsErr != nil {
		testutil.SkipLoudly(t, fmt.Sprintf("cannot build the pinned tools (set $%s to skip the build): %v", ToolBinEnv, toolsErr))
	}
	return filepath.Join(toolsDir, name)
}

// buildTools builds every tool of toolPackages and returns the directory
// holding them.
func buildTools() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	toolsMod := filepath.Join(root, "tools")
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(toolsMod, f))
		if err != nil {
			return "", fmt.Errorf("reading the tools module: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	key := hex.EncodeToString(h.Sum(nil))[:16]

	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	base := filepath.Join(cache, "coffer-test-tools")
	dir := filepath.Join(base, key)
	if haveTools(dir) {
		return dir, nil
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("creating the tool cache: %w", err)
	}
	tmp, err := os.MkdirTemp(base, "build-")
	if err != nil {
		return "", fmt.Errorf("creating the tool cache: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed into place

	goCmd, err := exec.LookPath("go")
	if err != nil {
		if gr := os.Getenv("GOROOT"); gr != "" {
			goCmd = filepath.Join(gr, "bin", "go")
		} else {
			return "", fmt.Errorf("no go command: %w", err)
		}
	}
	args := []string{"build", "-o", tmp + string(filepath.Separator)}
	for _, name := range []string{"registry", "oras", "versitygw"} {
		args = append(args, toolPackages[name])
	}
	cmd := exec.Command(goCmd, args...)
	cmd.Dir = toolsMod
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), toolsMod, err, out.String())
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another test process built them at the same time: use its.
		if haveTools(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("installing the tools into %s: %w", dir, err)
	}
	return dir, nil
}

// haveTools reports whether dir holds every tool.
func haveTools(dir string) bool {
	for name := range toolPackages {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// moduleRoot finds the directory of coffer's go.mod, above the working
// directory of the test (which go test sets to the package's directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "tools", "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no tools/go.mod above the working directory")
		}
		dir = parent
	}
}
