//go:build linux

package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testregistry"
)

var update = flag.Bool("update", false, "rewrite testdata/json-schema.golden from the commands' output")

// schemaOf replaces every value of a -json document by its type, keeping
// the values of "type" and "command" (which tell documents apart), so
// that what is compared is the schema: the fields, their JSON types, and
// lists that are lists (never null) even when empty.
func schemaOf(v any, key string) any {
	switch x := v.(type) {
	case map[string]any:
		if key == "node" {
			return "node" // a tree node, as docs/format.md encodes it
		}
		out := map[string]any{}
		for k, val := range x {
			out[k] = schemaOf(val, k)
		}
		return out
	case []any:
		if len(x) == 0 {
			return []any{}
		}
		return []any{schemaOf(x[0], "")}
	case string:
		if key == "type" || key == "command" || key == "kind" || key == "unit" || key == "action" {
			return x
		}
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case nil:
		return nil
	}
	return fmt.Sprintf("%T", v)
}

// mergeSchema merges schema b into a: the union of their fields, and a
// list's element where either has one. Documents of one kind differ in
// optional fields (omitted when empty) and in which lists are empty.
func mergeSchema(a, b any) any {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return a
		}
		for k, v := range y {
			if old, ok := x[k]; ok {
				x[k] = mergeSchema(old, v)
			} else {
				x[k] = v
			}
		}
		return x
	case []any:
		if y, ok := b.([]any); ok && len(x) == 0 {
			return y
		}
	}
	return a
}

// schemaLines returns the schemas of a command's -json output, one per
// kind of document (its type and command), in the order they first
// appear.
func schemaLines(t *testing.T, out string) []string {
	t.Helper()
	var order []string
	kinds := map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("not a JSON object: %q: %v", line, err)
		}
		kind := fmt.Sprint(v["type"], "/", v["command"])
		if _, ok := kinds[kind]; !ok {
			order = append(order, kind)
			kinds[kind] = schemaOf(v, "")
			continue
		}
		kinds[kind] = mergeSchema(kinds[kind], schemaOf(v, ""))
	}
	lines := make([]string, len(order))
	for i, k := range order {
		b, _ := json.Marshal(kinds[k])
		lines[i] = string(b)
	}
	return lines
}

// keyToRemove returns the id of a key the harness's passphrase does not
// open (key add made it).
func keyToRemove(t *testing.T, h *harness) string {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(h.mustRun("-json", "at", h.repo, "key", "list")), "\n") {
		var k keyEvent
		if json.Unmarshal([]byte(line), &k) == nil && !k.Current {
			return k.ID
		}
	}
	t.Fatal("no key but the current one")
	return ""
}

// Every command's -json output, as a schema, against
// testdata/json-schema.golden (go test -run TestJSONGolden -update
// rewrites it), and every field in docs/json.md: the machine interface
// changes only on purpose, and documented.
func TestJSONGolden(t *testing.T) {
	h := newHarness(t)
	h.env["COFFER_NEW_PASSPHRASE"] = "a second passphrase"
	h.env["COFFER_CONFIG"] = filepath.Join(t.TempDir(), "config.json")
	src := sourceTree(t)
	other := filepath.Join(t.TempDir(), "other")
	restored := filepath.Join(t.TempDir(), "restored")
	archive := filepath.Join(t.TempDir(), "a.tar")
	man := t.TempDir()

	var golden strings.Builder
	run := func(wantCode int, args ...string) {
		t.Helper()
		r := h.run(append([]string{"-json"}, args...)...)
		if r.code != wantCode {
			t.Fatalf("coffer -json %s: exit %d, want %d: %s", strings.Join(args, " "), r.code, wantCode, r.stderr)
		}
		shown := regexp.MustCompile(`/tmp/\S*|ffffffff|127\.0\.0\.1:\d+|\b[0-9a-f]{64}\b`).ReplaceAllString(strings.Join(args, " "), "…")
		fmt.Fprintf(&golden, "## coffer -json %s\n", shown)
		for _, l := range schemaLines(t, r.stdout) {
			fmt.Fprintf(&golden, "%s\n", l)
		}
		for _, l := range schemaLines(t, r.stderr) {
			fmt.Fprintf(&golden, "stderr %s\n", l)
		}
	}
	run(0, "at", h.repo, "create")
	run(0, "at", h.repo, "backup", src, "-tag", "first")
	os.WriteFile(filepath.Join(src, "new"), []byte("new"), 0o644)
	run(0, "at", h.repo, "backup", src, "-dry-run")
	run(0, "at", h.repo, "backup", src)
	run(0, "at", h.repo, "ls")
	run(0, "at", h.repo, "ls", "latest:")
	run(0, "at", h.repo, "find", "LICENSE")
	run(0, "at", h.repo, "restore", "latest", "-to", restored)
	run(0, "at", h.repo, "archive", "latest", "-o", archive)
	run(0, "at", h.repo, "diff", "latest", src)
	os.WriteFile(filepath.Join(src, "new"), []byte("changed"), 0o644)
	run(0, "at", h.repo, "diff", "latest", src)
	run(0, "at", h.repo, "check", "-read-data")
	run(0, "at", h.repo, "info")
	run(0, "at", h.repo, "stats")
	run(0, "at", h.repo, "key", "list")
	run(0, "at", h.repo, "key", "add")
	run(0, "at", h.repo, "tag", "latest", "-add", "second")
	run(0, "at", other, "create", "-from", h.repo)
	run(0, "at", h.repo, "sync", "to", other)
	run(0, "at", h.repo, "forget", "-keep-last", "1", "-dry-run")
	run(0, "at", h.repo, "forget", "-keep-last", "1")
	run(0, "at", h.repo, "prune")
	run(0, "at", h.repo, "repair", "index")
	run(0, "at", h.repo, "repair", "snapshots", "-dry-run")
	run(0, "at", h.repo, "unlock")
	run(0, "cache")
	run(0, "store", "add", "prod", h.repo)
	run(0, "store", "list")
	run(0, "store", "rm", "prod")
	run(0, "at", h.repo, "key", "rm", keyToRemove(t, h))
	run(0, "at", h.repo, "forget", "latest")
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Auth: testregistry.AuthBasic})
	h.env["DOCKER_CONFIG"] = t.TempDir()
	r := runWithStdin(h, reg.Password+"\n", "-json", "login", "-username", reg.Username, "-password-stdin", reg.Host)
	if r.code != 0 {
		t.Fatalf("login: %s", r.stderr)
	}
	fmt.Fprintf(&golden, "## coffer -json login -username … -password-stdin …\n%s\n", strings.Join(schemaLines(t, r.stdout), "\n"))
	run(0, "logout", reg.Host)
	run(0, "version")
	run(0, "man", man)
	run(ExitNoSnapshot, "at", h.repo, "ls", "ffffffff:")

	got := golden.String()
	path := filepath.Join("testdata", "json-schema.golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./cli -run TestJSONGolden -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("the -json output changed; if on purpose, document it in docs/json.md and run go test ./cli -run TestJSONGolden -update.\ngot:\n%s", got)
	}

	// Every document type and every field is in docs/json.md.
	doc, err := os.ReadFile("../docs/json.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(got, "\n") {
		line = strings.TrimPrefix(line, "stderr ")
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var v any
		json.Unmarshal([]byte(line), &v)
		var walk func(v any)
		walk = func(v any) {
			switch x := v.(type) {
			case map[string]any:
				for k, val := range x {
					if !strings.Contains(string(doc), "`"+k+"`") {
						t.Errorf("docs/json.md does not document the field %q (in %s)", k, line)
					}
					if k == "type" || k == "command" {
						if s, ok := val.(string); ok && !strings.Contains(string(doc), "`"+s+"`") {
							t.Errorf("docs/json.md does not document %s %q", k, s)
						}
					}
					walk(val)
				}
			case []any:
				for _, e := range x {
					walk(e)
				}
			}
		}
		walk(v)
	}
}
