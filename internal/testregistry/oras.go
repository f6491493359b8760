package testregistry

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Oras runs the pinned oras CLI (oras.land/oras v1.3.6, from
// tools/go.mod) with args, and returns its standard output. env is added
// to the test's environment; by default DOCKER_CONFIG points at an empty
// directory, so that oras sees no credentials but those the caller
// passes (for instance Registry.DockerEnv, or Registry.OrasFlags'
// --registry-config). A failure to run, or a non-zero exit, is returned
// as an error holding oras's standard error; the test is skipped loudly
// if oras cannot be built here. oras is given two minutes.
func Oras(t testing.TB, env []string, args ...string) (stdout string, err error) {
	t.Helper()
	bin := toolBin(t, "oras")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	home := t.TempDir()
	cmd.Env = append(cmd.Environ(), "HOME="+home, "DOCKER_CONFIG="+home, "NO_COLOR=1")
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("oras %s: %w\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}
