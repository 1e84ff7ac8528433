package checkpoints

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/s3blob" // s3:// URLs
	"gocloud.dev/gcerrors"

	"github.com/sluice-data/sluice/internal/commit"
)

// Errors of a Store.
var (
	// ErrNotFound is wrapped when a key does not exist.
	ErrNotFound = errors.New("checkpoints: not found")
	// ErrExist is wrapped when an exclusive Put finds its key taken.
	ErrExist = errors.New("checkpoints: exists")
)

// A Store holds a job's checkpoints: immutable objects by key ("/"-separated
// paths). It is safe for concurrent use: a checkpoint's chunks are written
// by several uploaders at once.
type Store interface {
	// Put writes data under key, durably before it returns. If exclusive,
	// it fails with ErrExist when key exists, atomically against every
	// other writer of the store: the fence of a manifest.
	Put(ctx context.Context, key string, data []byte, exclusive bool) error
	// Get reads the object under key; ErrNotFound if there is none.
	Get(ctx context.Context, key string) ([]byte, error)
	// List returns the keys that start with prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// String names the store in messages.
	String() string
}

// Open opens the store at url: a local directory (a path or file:///path),
// mem:// (an empty store in this process), or an S3 bucket and prefix
// (s3://bucket/prefix?endpoint=...&region=..., as gocloud.dev/blob takes).
func Open(ctx context.Context, url string) (Store, error) {
	i := strings.Index(url, "://")
	if url == "" {
		return nil, errors.New("checkpoints: empty URL")
	}
	if i <= 0 || strings.ContainsAny(url[:i], "/\\") {
		dir, err := filepath.Abs(url)
		if err != nil {
			return nil, fmt.Errorf("checkpoints: %s: %w", url, err)
		}
		return NewLocal(dir), nil
	}
	scheme, rest := url[:i], url[i+3:]
	switch scheme {
	case "file":
		if strings.ContainsRune(rest, '?') {
			return nil, fmt.Errorf("checkpoints: %s: file:// URLs take no parameters", url)
		}
		if !strings.HasPrefix(rest, "/") {
			return nil, fmt.Errorf("checkpoints: %s: file:// URLs take an absolute path (file:///dir)", url)
		}
		return NewLocal(filepath.Clean(rest)), nil
	case "mem":
		if rest != "" {
			return nil, fmt.Errorf("checkpoints: %s: mem:// takes no bucket or parameters", url)
		}
		return NewMem(), nil
	case "s3":
		bucket, query := rest, ""
		if j := strings.IndexByte(rest, '?'); j >= 0 {
			bucket, query = rest[:j], rest[j:]
		}
		prefix := ""
		if j := strings.IndexByte(bucket, '/'); j >= 0 {
			bucket, prefix = bucket[:j], strings.Trim(bucket[j+1:], "/")
		}
		b, err := blob.OpenBucket(ctx, "s3://"+bucket+query)
		if err != nil {
			return nil, fmt.Errorf("checkpoints: opening %s: %w", url, err)
		}
		if prefix != "" {
			b = blob.PrefixedBucket(b, prefix+"/")
		}
		return &Blob{b: b, name: "s3://" + bucket + "/" + prefix}, nil
	}
	return nil, fmt.Errorf("checkpoints: %s: the scheme %q is not one of file, mem, s3", url, scheme)
}

// ---- in memory ----

// Mem is a store in this process: the twin of the others in tests and in
// the deterministic executor.
type Mem struct {
	mu   sync.Mutex
	objs map[string][]byte
}

// NewMem returns an empty store in memory.
func NewMem() *Mem { return &Mem{objs: map[string][]byte{}} }

func (m *Mem) Put(_ context.Context, key string, data []byte, exclusive bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[key]; ok && exclusive {
		return fmt.Errorf("%s: %w", key, ErrExist)
	}
	m.objs[key] = slices.Clone(data)
	return nil
}

func (m *Mem) Get(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.objs[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return slices.Clone(d), nil
}

func (m *Mem) List(_ context.Context, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.objs {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

func (m *Mem) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, key)
	return nil
}

func (m *Mem) String() string { return "mem://" }

// ---- local files ----

// Local is a directory of the local file system. gocloud's fileblob is not
// used: its exclusive create is not atomic and it does not fsync (DESIGN.md
// §5). A Put writes a temporary file, syncs it, and renames it into place,
// or for an exclusive Put links it (a link fails if the name exists), then
// syncs the directory.
type Local struct{ dir string }

// NewLocal returns the store in dir, created on the first Put.
func NewLocal(dir string) *Local { return &Local{dir: dir} }

func (l *Local) path(key string) string { return filepath.Join(l.dir, filepath.FromSlash(key)) }

func (l *Local) Put(ctx context.Context, key string, data []byte, exclusive bool) error {
	_, err := commit.Local{}.WriteFile(ctx, l.path(key), data, commit.Cond{IfAbsent: exclusive})
	if errors.Is(err, commit.ErrPrecondition) {
		return fmt.Errorf("%s: %w", l.path(key), ErrExist)
	}
	return err
}

func (l *Local) Get(_ context.Context, key string) ([]byte, error) {
	d, err := os.ReadFile(l.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", l.path(key), ErrNotFound)
	}
	return d, err
}

// List walks only the directory that holds every key with prefix (for
// "chk-00…07/", that checkpoint's), not the whole store.
func (l *Local) List(_ context.Context, prefix string) ([]string, error) {
	var keys []string
	root := l.dir
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		root = l.path(prefix[:i])
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == root {
			return filepath.SkipAll
		}
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".") { // .name.*.tmp: a Put in progress
			return nil
		}
		rel, err := filepath.Rel(l.dir, p)
		if err != nil {
			return err
		}
		if key := filepath.ToSlash(rel); strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	slices.Sort(keys)
	return keys, err
}

func (l *Local) Delete(_ context.Context, key string) error {
	err := os.Remove(l.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (l *Local) String() string { return "file://" + l.dir }

// ---- object stores ----

// Blob is a bucket of gocloud.dev/blob. An exclusive Put is a conditional
// write (If-None-Match: * on S3).
type Blob struct {
	b    *blob.Bucket
	name string
}

// NewBlob returns the store in bucket b, named name in messages.
func NewBlob(b *blob.Bucket, name string) *Blob { return &Blob{b: b, name: name} }

func (s *Blob) Put(ctx context.Context, key string, data []byte, exclusive bool) error {
	// NewWriter, not WriteAll: WriteAll computes MD5 twice (DESIGN.md §5).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.b.NewWriter(ctx, key, &blob.WriterOptions{ContentType: "application/octet-stream", IfNotExist: exclusive})
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		cancel() // abandons the upload
		_ = w.Close()
		return err
	}
	err = w.Close()
	if exclusive && err != nil {
		if c := gcerrors.Code(err); c == gcerrors.FailedPrecondition || c == gcerrors.AlreadyExists ||
			strings.Contains(err.Error(), "PreconditionFailed") {
			return fmt.Errorf("%s/%s: %w: %v", s.name, key, ErrExist, err)
		}
	}
	return err
}

func (s *Blob) Get(ctx context.Context, key string) ([]byte, error) {
	r, err := s.b.NewReader(ctx, key, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, fmt.Errorf("%s/%s: %w", s.name, key, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func (s *Blob) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	it := s.b.List(&blob.ListOptions{Prefix: prefix})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if !o.IsDir {
			keys = append(keys, o.Key)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

func (s *Blob) Delete(ctx context.Context, key string) error {
	err := s.b.Delete(ctx, key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil
	}
	return err
}

func (s *Blob) String() string { return s.name }
