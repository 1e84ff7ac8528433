package parquetio

import (
	"context"
	"os"

	"github.com/sluice-data/sluice/internal/commit"

	"github.com/parquet-go/parquet-go"
)

// SetDirect turns the direct read path on or off for the tests that
// compare it with the general one, and returns a function restoring it.
func SetDirect(on bool) (restore func()) {
	old := directEnabled
	directEnabled = on
	return func() { directEnabled = old }
}

// UsesDirect says whether the file at path is read as T on the direct path.
func UsesDirect[T any](path string) (bool, error) {
	rec, err := recordOf[T]()
	if err != nil {
		return false, err
	}
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return false, err
	}
	ff, err := rec.fit(pf.Schema(), nil)
	if err != nil {
		return false, err
	}
	return rec.directPlan(pf.Schema(), ff) != nil, nil
}

// SetRename replaces the rename that publishes local files, and returns a
// function restoring it.
func SetRename(f func(from, to string) error) (restore func()) {
	old := rename
	rename = f
	return func() { rename = old }
}

// CommitFS returns the commit protocol's view of the store of url and the
// path of url in it.
func CommitFS(ctx context.Context, url string) (commit.FS, string, error) {
	loc, err := parseLocation(ctx, url)
	if err != nil {
		return nil, "", err
	}
	return commitFS(loc.st), loc.path, nil
}
