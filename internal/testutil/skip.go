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
	if os.Geteuid() != 0 {
		SkipLoudly(t, "needs root: "+why)
	}
}
