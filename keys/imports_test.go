package keys_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOnlyKeysImportsCipher enforces STYLE §8: crypto/cipher (and so any
// hand-rolled use of a block cipher) appears in package keys and nowhere
// else in the module.
func TestOnlyKeysImportsCipher(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	keysDir := filepath.Join(root, "keys")
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path == keysDir || (path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			// A file another package is still writing; its own build
			// reports it.
			t.Logf("skipping %s: %v", path, err)
			return nil
		}
		for _, imp := range f.Imports {
			if p, err := strconv.Unquote(imp.Path.Value); err == nil && p == "crypto/cipher" {
				t.Errorf("%s imports crypto/cipher; only package keys may", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
