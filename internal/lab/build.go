package lab

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// guestInitPkg is the package of the guest's PID 1.
const guestInitPkg = "github.com/ktls-go/ktls/internal/lab/guestinit"

// goTool returns the go command.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if r := os.Getenv("GOROOT"); r != "" {
		return filepath.Join(r, "bin", "go"), nil
	}
	return "", fmt.Errorf("go command not found")
}

// goCmd runs the go command for the guest: static, linux/amd64.
func goCmd(stdout io.Writer, args ...string) error {
	g, err := goTool()
	if err != nil {
		return err
	}
	cmd := exec.Command(g, args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	var stderr bytes.Buffer
	cmd.Stdout = stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return nil
}

// buildStatic builds a static linux/amd64 binary of a package.
func buildStatic(out, pkg string) error {
	return goCmd(nil, "build", "-trimpath", "-o", out, pkg)
}

// testPackage is a package with tests.
type testPackage struct {
	ImportPath string
	Dir        string
	Rel        string   // directory relative to the module root, slash separated
	Binary     string   // host path of the built test binary
	Uses       []string // imports, test imports and dependencies
}

// listTestPackages returns the packages matching the patterns that have
// test files.
func listTestPackages(patterns []string) ([]*testPackage, error) {
	var out bytes.Buffer
	args := append([]string{"list", "-e", "-json=ImportPath,Dir,TestGoFiles,XTestGoFiles,Module,Error,Deps,TestImports,XTestImports"}, patterns...)
	if err := goCmd(&out, args...); err != nil {
		return nil, err
	}
	var pkgs []*testPackage
	dec := json.NewDecoder(&out)
	for dec.More() {
		var p struct {
			ImportPath                string
			Dir                       string
			TestGoFiles, XTestGoFiles []string
			Module                    *struct{ Dir string }
			Error                     *struct{ Err string }
			Deps, TestImports         []string
			XTestImports              []string
		}
		if err := dec.Decode(&p); err != nil {
			return nil, err
		}
		if p.Error != nil {
			return nil, fmt.Errorf("%s: %s", p.ImportPath, p.Error.Err)
		}
		if len(p.TestGoFiles)+len(p.XTestGoFiles) == 0 {
			continue
		}
		rel := p.ImportPath
		if p.Module != nil {
			if r, err := filepath.Rel(p.Module.Dir, p.Dir); err == nil && !strings.HasPrefix(r, "..") {
				rel = filepath.ToSlash(r)
			}
		}
		uses := append(append(append([]string{p.ImportPath}, p.Deps...), p.TestImports...), p.XTestImports...)
		pkgs = append(pkgs, &testPackage{ImportPath: p.ImportPath, Dir: p.Dir, Rel: rel, Uses: uses})
	}
	return pkgs, nil
}

// buildTests builds the test binaries into dir, two at a time.
func buildTests(dir string, pkgs []*testPackage) error {
	var wg sync.WaitGroup
	errs := make([]error, len(pkgs))
	sem := make(chan struct{}, 2)
	for i, p := range pkgs {
		p.Binary = filepath.Join(dir, fmt.Sprintf("%03d-%s.test", i, filepath.Base(p.Dir)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = goCmd(nil, "test", "-c", "-o", p.Binary, p.ImportPath)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// packageDeps lists a package and its dependencies.
func packageDeps(pkg string) ([]string, error) {
	var out bytes.Buffer
	if err := goCmd(&out, "list", "-deps", "-f", "{{.ImportPath}}", pkg); err != nil {
		return nil, err
	}
	return strings.Fields(out.String()), nil
}
