//go:build linux || darwin || freebsd

package mount

import (
	"fmt"
	"os/exec"
	"strings"
)

// runQuiet runs a helper program, returning its output in the error.
func runQuiet(prog string, args ...string) error {
	out, err := exec.Command(prog, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", prog, err, strings.TrimSpace(string(out)))
	}
	return nil
}
