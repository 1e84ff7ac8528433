package commit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

const (
	// ManifestName is the manifest's file name inside an output.
	ManifestName = "_SUCCESS"
	// InternalDir holds leases, the lock and staging inside an output.
	InternalDir = "_sluice"
	// ManifestFormat is written in every manifest.
	ManifestFormat = "sluice-manifest/1"
)

// ErrManifest is wrapped when a manifest cannot be read or does not
// describe the output.
var ErrManifest = errors.New("commit: bad manifest")

// Manifest names the files of an output's current snapshot.
type Manifest struct {
	Format string `json:"format"`
	Job    string `json:"job"`
	Run    string `json:"run"`
	// Epoch is the lease epoch of the run that wrote it.
	Epoch int64  `json:"epoch"`
	Mode  string `json:"mode,omitempty"`
	// Committed is when the snapshot was published (RFC 3339).
	Committed string `json:"committed,omitempty"`
	// Checkpoint is the job's checkpoint whose completion published it,
	// for a job that does not end by itself (Txn.CommitCheckpoint); 0 for
	// a job's end, after which no process of the run may resume it.
	Checkpoint uint64 `json:"checkpoint,omitempty"`
	// Files are the data files, by path relative to the output with "/"
	// separators, sorted.
	Files []File `json:"files"`
}

// File is a data file of a snapshot.
type File struct {
	Path  string `json:"path"`
	Rows  int64  `json:"rows"`
	Bytes int64  `json:"bytes"`
}

// Paths returns the files' paths.
func (m *Manifest) Paths() []string {
	out := make([]string, len(m.Files))
	for i, f := range m.Files {
		out[i] = f.Path
	}
	return out
}

// Has reports whether the snapshot lists rel.
func (m *Manifest) Has(rel string) bool {
	_, ok := slices.BinarySearchFunc(m.Files, rel, func(f File, p string) int { return strings.Compare(f.Path, p) })
	return ok
}

func (m *Manifest) encode() []byte {
	b, _ := json.MarshalIndent(m, "", "  ")
	return append(b, '\n')
}

// ParseManifest decodes a manifest. Sluice's earlier _SUCCESS markers (a
// list of file names) are read as manifests; an empty _SUCCESS (Spark's
// and Hadoop's) or one that is not JSON returns (nil, nil): no manifest.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(strings.TrimSpace(string(data))) == 0 || data[0] != '{' {
		return nil, nil
	}
	var raw struct {
		Format string          `json:"format"`
		Job    string          `json:"job"`
		Run    string          `json:"run"`
		Epoch  int64           `json:"epoch"`
		Mode   string          `json:"mode"`
		Commit string          `json:"committed"`
		Ckpt   uint64          `json:"checkpoint"`
		Files  json.RawMessage `json:"files"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, nil // not ours
	}
	m := &Manifest{Format: raw.Format, Job: raw.Job, Run: raw.Run, Epoch: raw.Epoch, Mode: raw.Mode, Committed: raw.Commit,
		Checkpoint: raw.Ckpt}
	switch {
	case raw.Format == ManifestFormat:
		if err := json.Unmarshal(raw.Files, &m.Files); err != nil {
			return nil, fmt.Errorf("%w: files: %v", ErrManifest, err)
		}
	case raw.Format == "" && raw.Run != "" && len(raw.Files) > 0:
		var names []string
		if err := json.Unmarshal(raw.Files, &names); err != nil {
			return nil, nil
		}
		for _, n := range names {
			m.Files = append(m.Files, File{Path: n, Rows: -1, Bytes: -1})
		}
		m.Format = "sluice-legacy"
	case raw.Format != "":
		return nil, fmt.Errorf("%w: unknown format %q (written by a newer Sluice?)", ErrManifest, raw.Format)
	default:
		return nil, nil
	}
	for _, f := range m.Files {
		if f.Path == "" || strings.HasPrefix(f.Path, "/") || slices.Contains(strings.Split(f.Path, "/"), "..") {
			return nil, fmt.Errorf("%w: file path %q is not inside the output", ErrManifest, f.Path)
		}
	}
	slices.SortFunc(m.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return m, nil
}

// ReadManifest reads the manifest of the output at dir: nil when it has
// none (no _SUCCESS, or one that Sluice did not write).
func ReadManifest(ctx context.Context, fsys FS, dir string) (*Manifest, string, error) {
	data, version, err := fsys.ReadFile(ctx, fsys.Join(dir, ManifestName))
	if errors.Is(err, ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading %s: %w", fsys.Display(fsys.Join(dir, ManifestName)), err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", fsys.Display(fsys.Join(dir, ManifestName)), err)
	}
	return m, version, nil
}

// Snapshot is the manifest that governs a directory a reader was pointed
// at: the output's root, and the path from it to the directory.
type Snapshot struct {
	Manifest *Manifest
	Root     string // the output directory holding the manifest
	Sub      string // dir relative to Root ("" or "day=2024-01-01/...")
}

// Files returns the snapshot's files below Sub, as full paths, sorted.
func (s *Snapshot) Files(fsys FS) []string {
	var out []string
	prefix := ""
	if s.Sub != "" {
		prefix = s.Sub + "/"
	}
	for _, f := range s.Manifest.Files {
		if strings.HasPrefix(f.Path, prefix) {
			out = append(out, fsys.Join(append([]string{s.Root}, strings.Split(f.Path, "/")...)...))
		}
	}
	return out
}

// FindSnapshot returns the manifest that governs dir: dir's own, or that of
// the nearest directory above it when dir is a Hive partition directory
// (name=value) of it, so that a reader pointed at out/day=2024-01-01/ reads
// what out/_SUCCESS lists there. Nil when there is none.
func FindSnapshot(ctx context.Context, fsys FS, dir string) (*Snapshot, error) {
	var sub []string
	for range 16 {
		m, _, err := ReadManifest(ctx, fsys, dir)
		if err != nil {
			return nil, err
		}
		if m != nil {
			slices.Reverse(sub)
			return &Snapshot{Manifest: m, Root: dir, Sub: path.Join(sub...)}, nil
		}
		up, base := split(fsys, dir)
		if up == dir || base == "" || !strings.Contains(base, "=") {
			return nil, nil
		}
		sub = append(sub, base)
		dir = up
	}
	return nil, nil
}

// split returns the directory holding p and p's last element.
func split(fsys FS, p string) (dir, base string) {
	sep := "/"
	if fsys.Local() {
		sep = string(osSeparator)
	}
	p = strings.TrimSuffix(p, sep)
	i := strings.LastIndex(p, sep)
	if i < 0 {
		return "", p
	}
	if i == 0 {
		return sep, p[1:]
	}
	return p[:i], p[i+1:]
}

func nowString(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
