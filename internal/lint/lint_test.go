// Package lint holds the tests that keep the layers apart (STYLE.md): the
// deterministic packages import no network, no OS and no actor runtime and
// never read the clock or the global random source.
package lint

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/sluice-data/sluice"

// deterministic packages: pure state machines and values.
var deterministic = []string{"core", "plan", "backpressure", "window", "state", "codec"}

// forbiddenDirect may not be imported directly by a deterministic package.
var forbiddenDirect = []string{"os", "os/exec", "net", "net/http", "syscall", "math/rand", "math/rand/v2", "crypto/rand", "io/fs", "unsafe"}

// forbiddenDeps may not be reached at all, directly or not.
var forbiddenDeps = []string{"github.com/asynkron/protoactor-go", "github.com/hashicorp/memberlist", "net", "google.golang.org/grpc",
	module + "/actors", module + "/connectors", module + "/clock"}

// forbiddenCalls are package-level functions that read the clock or global
// randomness.
var forbiddenCalls = map[string][]string{
	"time": {"Now", "Since", "Until", "Sleep", "After", "AfterFunc", "Tick", "NewTimer", "NewTicker"},
}

func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestForbiddenImports(t *testing.T) {
	r := root(t)
	for _, pkg := range deterministic {
		files, _ := filepath.Glob(filepath.Join(r, pkg, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			// plan may use unsafe.Sizeof for record sizes, and codec
			// reads and writes fields at their offsets.
			checkFile(t, f, pkg == "plan" || pkg == "codec")
		}
		out, err := goList(r, "./"+pkg)
		if err != nil {
			t.Fatalf("go list -deps ./%s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, bad := range forbiddenDeps {
				if dep == bad || strings.HasPrefix(dep, bad+"/") {
					t.Errorf("package %s depends on %s", pkg, dep)
				}
			}
		}
	}
	// stages is the user API: it builds graphs and runs nothing.
	out, err := goList(r, "./stages")
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{module + "/core", module + "/actors", "github.com/asynkron/protoactor-go", "github.com/parquet-go/parquet-go"} {
			if dep == bad || strings.HasPrefix(dep, bad+"/") {
				t.Errorf("package stages depends on %s", dep)
			}
		}
	}
}

func goList(dir, pkg string) ([]byte, error) {
	cmd := exec.Command("go", "list", "-deps", pkg)
	cmd.Dir = dir
	return cmd.CombinedOutput()
}

func checkFile(t *testing.T, path string, allowUnsafe bool) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	imported := map[string]string{} // local name → path
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		for _, bad := range forbiddenDirect {
			if p == bad && !(p == "unsafe" && allowUnsafe) {
				t.Errorf("%s imports %s", rel(path), p)
			}
		}
		name := filepath.Base(p)
		if imp.Name != nil {
			name = imp.Name.Name
		}
		imported[name] = p
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	full, err := parser.ParseFile(fset, path, src, 0)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(full, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		id, ok := sel.X.(*ast.Ident)
		if !ok {
			return true
		}
		for _, fn := range forbiddenCalls[imported[id.Name]] {
			if sel.Sel.Name == fn {
				t.Errorf("%s: %s.%s reads the clock; take a time from the caller", fset.Position(sel.Pos()), id.Name, fn)
			}
		}
		return true
	})
}

func rel(path string) string {
	if i := strings.Index(path, "/core/"); i >= 0 {
		return path[i+1:]
	}
	return filepath.Base(path)
}
