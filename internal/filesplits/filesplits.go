// Package filesplits lists the local files a pattern names as source splits,
// one split per file: what the line-oriented connectors (jsonl, csvio) share.
package filesplits

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sluice-data/sluice/stages"
)

// List makes one split per file that pattern (a file or a glob) names, in
// lexical order; Split.Data holds the path and Bytes its size. Errors are
// prefixed with pkg ("jsonl"); a pattern that matches nothing wraps
// errNoFiles; a directory is refused with a hint using ext (".jsonl").
func List(pkg, pattern, ext string, errNoFiles error) ([]stages.Split, error) {
	if pattern == "" {
		return nil, fmt.Errorf("%w: empty pattern", errNoFiles)
	}
	var files []string
	if !strings.ContainsAny(pattern, `*?[\`) {
		fi, err := os.Stat(pattern)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pkg, err)
		}
		if fi.IsDir() {
			return nil, fmt.Errorf("%s: %s is a directory (name its files with a glob such as %s)",
				pkg, pattern, filepath.Join(pattern, "*"+ext))
		}
		files = []string{pattern}
	} else {
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return nil, fmt.Errorf("%s: pattern %q: %w", pkg, pattern, err)
		}
		for _, m := range matches {
			fi, err := os.Stat(m)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", pkg, err)
			}
			if !fi.IsDir() {
				files = append(files, m)
			}
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%w %q", errNoFiles, pattern)
		}
		slices.Sort(files)
	}
	splits := make([]stages.Split, len(files))
	for i, f := range files {
		size := int64(-1)
		if fi, err := os.Stat(f); err == nil {
			size = fi.Size()
		}
		splits[i] = stages.Split{Index: i, Records: -1, Bytes: size, Desc: f, Data: f}
	}
	return splits, nil
}
