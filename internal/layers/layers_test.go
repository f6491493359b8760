// Package layers holds the test that keeps coffer's imports pointing down
// (docs/design.md): storage knows bytes and names, repo knows blobs and
// packs, snapshot knows files and trees, cli only wires and prints.
package layers

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/cofferhq/coffer"

// allowed lists, per package directory prefix, the module packages its
// code may import, and what its tests may import besides. The first
// matching prefix wins; keep docs/design.md in step.
var allowed = []struct {
	pkg     string
	imports []string
	tests   []string
}{
	{"cmd/coffer", []string{"cli"}, nil},
	{"ui/browsertest", nil, []string{"ui", "snapshot", "repo", "storage/mem", "internal/testutil"}},
	{"cli", []string{"ui", "mount", "snapshot", "repo", "storage", "storage/all", "storage/oci", "storage/s3", "internal/bytesize", "internal/cachefile"}, []string{"internal/testutil", "internal/testregistry"}},
	{"ui", []string{"snapshot", "repo", "storage", "internal/bytesize"}, []string{"storage/mem", "storage/local", "storage/oci", "internal/testutil", "internal/testregistry"}},
	{"bench", []string{"internal/testutil"}, nil},
	{"mount", []string{"snapshot", "repo"}, []string{"storage/mem", "storage/local", "internal/testutil"}},
	{"snapshot", []string{"repo", "storage", "internal/gitignore"}, []string{"storage/mem", "storage/local", "internal/testutil"}},
	{"repo", []string{"storage", "internal/cachefile"}, []string{"storage/mem", "storage/local", "internal/testutil"}},
	{"storage/all", []string{"storage", "storage/local", "storage/oci", "storage/s3"}, nil},
	{"storage/storagetest", []string{"storage"}, nil},
	{"storage", []string{"storage", "storage/internal/", "internal/cachefile"}, []string{"storage/storagetest", "internal/testutil", "internal/testregistry"}},
	{"internal/testutil", nil, nil},
	{"internal/testregistry", []string{"internal/testutil"}, nil},
	{"internal/cachefile", nil, nil},
	{"internal/gitignore", nil, nil},
	{"internal/bytesize", nil, nil},
	{"internal/layers", nil, nil},
	{"tools", nil, nil},
}

func TestImportsPointDown(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root {
			if d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			// Modules of their own inside the tree (bench/,
			// ui/browsertest/, tools/) are checked too: they import
			// coffer's packages through a replace, by the same rules.
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rule := -1
		for i, a := range allowed {
			if rel == a.pkg || strings.HasPrefix(rel, a.pkg+"/") {
				rule = i
				break
			}
		}
		if rule < 0 {
			t.Errorf("%s: package %s has no layering rule; add one here and in docs/design.md", path, rel)
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			if !strings.HasPrefix(p, module+"/") {
				continue
			}
			target := strings.TrimPrefix(p, module+"/")
			ok := target == rel || permitted(allowed[rule].imports, target) ||
				(strings.HasSuffix(path, "_test.go") && permitted(allowed[rule].tests, target))
			if !ok {
				t.Errorf("%s imports %s: %s may only import %v (tests also %v)", path, target, allowed[rule].pkg, allowed[rule].imports, allowed[rule].tests)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Fatalf("only %d files checked: is the module root right?", checked)
	}
}

func permitted(list []string, target string) bool {
	for _, a := range list {
		if target == a || (strings.HasSuffix(a, "/") && strings.HasPrefix(target, a)) {
			return true
		}
	}
	return false
}
