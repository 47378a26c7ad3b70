// Package archtest holds the test that keeps the architecture what the
// README's "How it works" says: which package may import what. It reads
// the imports of every non-test Go file in the repository.
package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/qwen3-lora/qwen3-server/internal/testutil"
)

const module = "github.com/qwen3-lora/qwen3-server/"

// imports maps each package folder (relative to the repository root) to
// the imports of its non-test files, module-local ones without the module
// prefix.
func imports(t *testing.T) map[string]map[string]bool {
	root := testutil.RepoRoot(t)
	out := map[string]map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "build" || name == "node_modules" || name == "testdata" || name == "lib") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		if out[rel] == nil {
			out[rel] = map[string]bool{}
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			out[rel][strings.TrimPrefix(p, module)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func under(pkg, folder string) bool { return pkg == folder || strings.HasPrefix(pkg, folder+"/") }

// The rules, each with why.
func TestImportRules(t *testing.T) {
	all := imports(t)
	if len(all) < 15 || all["server"] == nil || all["engine/llamacpp"] == nil {
		t.Fatalf("read only %d packages: the walk is broken", len(all))
	}
	type rule struct {
		who   func(string) bool
		bans  func(string) bool
		why   string
		label string
	}
	is := func(folders ...string) func(string) bool {
		return func(p string) bool {
			for _, f := range folders {
				if under(p, f) {
					return true
				}
			}
			return false
		}
	}
	http := is("net/http", "github.com/gin-gonic/gin")
	rules := []rule{
		{func(p string) bool { return p != "engine/llamacpp" }, is("C"), "only engine/llamacpp is cgo", "cgo"},
		{is("engine"), func(p string) bool { return http(p) || is("server", "conversation", "adapters", "sampling", "configs")(p) },
			"the engine knows no HTTP and nothing above it", "engine"},
		{is("conversation"), func(p string) bool { return http(p) || is("server", "engine/scheduler", "engine/llamacpp")(p) },
			"the conversation layer is tested without HTTP, against the engine interface", "conversation"},
		{is("sampling"), func(p string) bool { return http(p) || is("server", "conversation", "engine/scheduler", "engine/llamacpp")(p) },
			"sampling owns parameters only", "sampling"},
		{is("server"), is("engine/scheduler", "engine/llamacpp", "tools"), "the HTTP server talks to the engine interface, not an implementation", "server"},
		{is("batch"), func(p string) bool { return http(p) || is("server", "engine", "conversation", "cmd")(p) },
			"the batch store knows no HTTP and no engine: the server implements its Executor", "batch"},
		{is("server", "conversation", "engine", "adapters", "sampling", "configs", "web", "batch"), is("tools", "internal/testutil"),
			"the serving path does not depend on offline tooling", "serving path"},
	}
	for pkg, imps := range all {
		for imp := range imps {
			for _, r := range rules {
				if r.who(pkg) && r.bans(imp) {
					t.Errorf("%s imports %s: %s (rule %q)", pkg, imp, r.why, r.label)
				}
			}
		}
	}
}

// TestPackageComments: every package says what it owns.
func TestPackageComments(t *testing.T) {
	root := testutil.RepoRoot(t)
	for pkg := range imports(t) {
		dir := filepath.Join(root, pkg)
		ents, _ := os.ReadDir(dir)
		found := false
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".go") && !strings.HasSuffix(e.Name(), "_test.go") {
				f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, e.Name()), nil, parser.PackageClauseOnly|parser.ParseComments)
				if err == nil && f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Package "+f.Name.Name+" ") || err == nil && f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Command ") {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("%s has no package comment (\"// Package name ...\")", pkg)
		}
	}
}
