// Package filesplits lists the local files a pattern names as source splits,
// one split per file: what the line-oriented connectors (jsonl, csvio) share.
package filesplits

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/sluice-data/sluice/internal/commit"
	"github.com/sluice-data/sluice/stages"
)

// List makes one split per file that pattern (a file or a glob) names, in
// lexical order; Split.Data holds the path and Bytes its size. Errors are
// prefixed with pkg ("jsonl"); a pattern that matches nothing wraps
// errNoFiles; a directory is read as the files its Sluice manifest lists
// (and refused without one, with a hint using ext, ".jsonl"). A glob
// below a Sluice output matches only the files of its snapshot.
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
			// A Sluice output: the files its manifest lists.
			snap, err := commit.FindSnapshot(context.Background(), commit.Local{}, filepath.Clean(pattern))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", pkg, err)
			}
			if snap == nil {
				return nil, fmt.Errorf("%s: %s is a directory with no Sluice manifest (name its files with a glob such as %s)",
					pkg, pattern, filepath.Join(pattern, "*"+ext))
			}
			files = snap.Files(commit.Local{})
			for _, f := range files {
				if _, err := os.Stat(f); err != nil {
					return nil, fmt.Errorf("%s: the manifest of %s lists %s: %w", pkg, snap.Root, f, err)
				}
			}
		} else {
			files = []string{pattern}
		}
	} else {
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return nil, fmt.Errorf("%s: pattern %q: %w", pkg, pattern, err)
		}
		// Below a Sluice output, only the files of its snapshot.
		snaps := map[string]map[string]bool{} // by directory: nil, or the snapshot's files
		listed := func(f string) (bool, error) {
			dir := filepath.Dir(f)
			set, ok := snaps[dir]
			if !ok {
				snap, err := commit.FindSnapshot(context.Background(), commit.Local{}, dir)
				if err != nil {
					return false, err
				}
				if snap != nil {
					set = map[string]bool{}
					for _, p := range snap.Files(commit.Local{}) {
						set[p] = true
					}
				}
				snaps[dir] = set
			}
			return set == nil || set[f], nil
		}
		for _, m := range matches {
			fi, err := os.Stat(m)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", pkg, err)
			}
			if fi.IsDir() {
				continue
			}
			ok, err := listed(filepath.Clean(m))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", pkg, err)
			}
			if ok {
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

// Excerpt returns b as a string of at most max bytes and an ellipsis, for
// a dead letter's Record. A byte that is not part of valid UTF-8 becomes
// the four characters \xNN, so that a dead letter can be written anywhere
// text can.
func Excerpt(b []byte, max int) string {
	if utf8.Valid(b) {
		if len(b) <= max {
			return string(b)
		}
		i := max
		for i > 0 && !utf8.RuneStart(b[i]) {
			i--
		}
		return string(b[:i]) + "…"
	}
	const hex = "0123456789abcdef"
	var out []byte
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		piece := b[:n]
		if r == utf8.RuneError && n == 1 {
			piece = []byte{'\\', 'x', hex[b[0]>>4], hex[b[0]&15]}
		}
		if len(out)+len(piece) > max {
			return string(out) + "…"
		}
		out = append(out, piece...)
		b = b[n:]
	}
	return string(out)
}
