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
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
)

// ToolBinEnv names a directory that already holds the pinned "registry"
// (CNCF Distribution v3), "oras" and "versitygw" (an S3 server) binaries
// built from tools/go.mod, and "weed" (SeaweedFS, a second S3 server)
// built from tools/seaweedfs/go.mod, as .ci/run prepares. When it is
// unset, the first test that needs a tool builds those of its module
// (see toolBin).
const ToolBinEnv = "COFFER_TOOLBIN"

// Registry28Binary is where Debian's docker-registry package (CNCF
// Distribution 2.8) installs its program.
const Registry28Binary = "/usr/bin/docker-registry"

// toolModule is a module of its own under the repository root that pins
// tools: SeaweedFS has one apart from tools/go.mod, so that its many
// dependencies are no part of the registry's and VersityGW's build.
type toolModule struct {
	dir      string            // relative to the repository root
	packages map[string]string // binary name -> package
}

// toolModules are the modules of the pinned tools.
var toolModules = []toolModule{
	{dir: "tools", packages: map[string]string{
		"registry":  "github.com/distribution/distribution/v3/cmd/registry",
		"oras":      "oras.land/oras/cmd/oras",
		"versitygw": "github.com/versity/versitygw/cmd/versitygw",
	}},
	{dir: "tools/seaweedfs", packages: map[string]string{
		"weed": "github.com/seaweedfs/seaweedfs/weed",
	}},
}

// toolBuilds builds each module's tools once per test process.
var toolBuilds = func() map[string]func() (string, error) {
	m := map[string]func() (string, error){}
	for _, mod := range toolModules {
		m[mod.dir] = sync.OnceValues(func() (string, error) { return buildTools(mod) })
	}
	return m
}()

// moduleOf returns the module that pins the tool name.
func moduleOf(name string) (toolModule, bool) {
	for _, mod := range toolModules {
		if _, ok := mod.packages[name]; ok {
			return mod, true
		}
	}
	return toolModule{}, false
}

// toolBin returns the path of a pinned tool ("registry", "oras",
// "versitygw" or "weed"). With $COFFER_TOOLBIN set it must be there (a
// missing binary fails the test: the variable promised it). Otherwise
// the tools of its module are built once per test process, with the go
// command, into a per-user cache directory keyed by the module's go.mod
// and go.sum and the Go version, so that later test processes (one per
// package) reuse them instead of each building ~100 MB of binaries into
// a temporary directory it cannot clean up. If they cannot be built (no
// go command, no module source, no network for a first download), the
// test is skipped loudly.
func toolBin(t testing.TB, name string) string {
	t.Helper()
	mod, ok := moduleOf(name)
	if !ok {
		t.Fatalf("testutil: unknown tool %q", name)
	}
	if dir := os.Getenv(ToolBinEnv); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("testutil: $%s=%s but it holds no %s: %v", ToolBinEnv, dir, name, err)
		}
		return p
	}
	dir, err := toolBuilds[mod.dir]()
	if err != nil {
		testutil.SkipLoudly(t, fmt.Sprintf("cannot build the pinned tools (set $%s to skip the build): %v", ToolBinEnv, err))
	}
	return filepath.Join(dir, name)
}

// buildTools builds every tool of mod and returns the directory holding
// them.
func buildTools(mod toolModule) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	toolsMod := filepath.Join(root, filepath.FromSlash(mod.dir))
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
	if haveTools(dir, mod) {
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
	for _, pkg := range mod.packages {
		args = append(args, pkg)
	}
	slices.Sort(args[3:])
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
		if haveTools(dir, mod) {
			return dir, nil
		}
		return "", fmt.Errorf("installing the tools into %s: %w", dir, err)
	}
	return dir, nil
}

// haveTools reports whether dir holds every tool of mod.
func haveTools(dir string, mod toolModule) bool {
	for name := range mod.packages {
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
