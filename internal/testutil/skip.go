package testutil

import (
	"os"
	"testing"
)

// DisallowSkipEnv, when set to 1 (as .ci/run does), turns SkipLoudly into
// a failure, so that nothing is silently skipped in CI.
const DisallowSkipEnv = "COFFER_TEST_DISALLOW_SKIP"

// SkipLoudly skips a test whose prerequisite (root, a service) is missing
// on this machine, or fails it in CI where everything must run.
func SkipLoudly(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(DisallowSkipEnv) == "1" {
		t.Fatalf("cannot run here (%s), and %s=1 forbids skipping", why, DisallowSkipEnv)
	}
	t.Skipf("SKIPPED (runs in CI): %s", why)
}

// RequireRoot skips (or, in CI, fails) a test that needs root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	SkipInShort(t, "needs root: "+why)
	if os.Geteuid() != 0 {
		SkipLoudly(t, "needs root: "+why)
	}
}

// SkipInShort skips a slow test under `go test -short`, the fast inner
// loop (README, Development): tests that start a registry, nginx or a
// browser, run the coffer binary, or need root. CI runs without -short,
// where they all run. Each kind of fixture calls it in one place.
func SkipInShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: %s", what)
	}
}
