//go:build linux

package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
)

// docFiles returns the files docs/scheduling.md shows, by path: a line
// "`/path/name`:" followed by a fenced block.
func docFiles(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../docs/scheduling.md")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, m := range regexp.MustCompile("(?s)`(/etc/[^`]+)`:\n\n```[a-z]*\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		files[m[1]] = m[2]
	}
	return files
}

// The systemd units and the cron line of docs/scheduling.md: systemd
// accepts the units without a warning, and their commands, run as
// systemd and cron would, back up and apply the retention policy.
func TestSchedulingDocs(t *testing.T) {
	analyze := needTool(t, "systemd-analyze")
	files := docFiles(t)
	for _, name := range []string{"/etc/systemd/system/coffer-backup.service", "/etc/systemd/system/coffer-backup.timer",
		"/etc/systemd/system/coffer-forget.service", "/etc/cron.d/coffer"} {
		if files[name] == "" {
			t.Fatalf("docs/scheduling.md shows no %s", name)
		}
	}

	// The paths the documentation uses, replaced by the test's own.
	dir := t.TempDir()
	h := newHarness(t)
	delete(h.env, "COFFER_PASSPHRASE")
	cfg := filepath.Join(dir, "config.json")
	h.env["COFFER_CONFIG"] = cfg
	pw := filepath.Join(dir, "passphrase")
	os.WriteFile(pw, []byte("scheduled\n"), 0o600)
	h.mustRun("store", "add", "prod", h.repo, "passphrase-command=cat "+pw)
	h.mustRun("at", "@prod", "create")
	srv, etc := sourceTree(t), sourceTree(t)
	replace := strings.NewReplacer(
		"/usr/local/bin/coffer", testutil.CofferBinary(t),
		"/root/.config/coffer/config.json", cfg,
		"/var/cache/coffer", filepath.Join(dir, "cache"),
		"/srv /etc", srv+" "+etc,
	).Replace

	units := filepath.Join(dir, "units")
	os.Mkdir(units, 0o755)
	var paths []string
	for name, text := range files {
		if strings.HasPrefix(name, "/etc/systemd/system/") {
			p := filepath.Join(units, filepath.Base(name))
			os.WriteFile(p, []byte(replace(text)), 0o644)
			paths = append(paths, p)
		}
	}
	cmd := exec.Command(analyze, append([]string{"verify", "--man=no"}, paths...)...)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	// Each service's command, with its environment, as systemd runs it.
	runService := func(name string) {
		t.Helper()
		var env []string
		var exec_ string
		for _, line := range strings.Split(replace(files[name]), "\n") {
			if v, ok := strings.CutPrefix(line, "Environment="); ok {
				env = append(env, v)
			}
			if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
				exec_ = v
			}
		}
		cmd := exec.Command("sh", "-c", exec_)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if out, err := cmd.Output(); err != nil || len(out) > 0 {
			t.Errorf("%s: %s: %v\nstdout: %s\nstderr: %s", name, exec_, err, out, stderr.String())
		}
	}
	runService("/etc/systemd/system/coffer-backup.service")
	runService("/etc/systemd/system/coffer-backup.service")

	// The cron line: minute, hour, day, month, weekday, user, command.
	fields := strings.Fields(files["/etc/cron.d/coffer"])
	if len(fields) < 7 || fields[5] != "root" {
		t.Fatalf("the cron line is not a /etc/cron.d line: %q", files["/etc/cron.d/coffer"])
	}
	cronCmd := replace(strings.Join(fields[6:], " "))
	cron := exec.Command("sh", "-c", cronCmd)
	cron.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	if out, err := cron.CombinedOutput(); err != nil {
		t.Errorf("cron: %s: %v: %s", cronCmd, err, out)
	}

	ls := h.mustRun("at", "@prod", "ls")
	if n := strings.Count(ls, "\n"); n != 3 || strings.Count(ls, "[daily]") != 3 || !strings.Contains(ls, srv+" "+etc) {
		t.Errorf("after two timer runs and one cron run:\n%s", ls)
	}
	runService("/etc/systemd/system/coffer-forget.service")
	// One day's three snapshots: the newest is kept, and the oldest while
	// the policy covers fewer days than it asks for, as restic does.
	if ls := h.mustRun("at", "@prod", "ls"); strings.Count(ls, "\n") != 2 {
		t.Errorf("after the forget service (-keep-daily 7 of one day's snapshots):\n%s", ls)
	}
	h.mustRun("at", "@prod", "check")
}
