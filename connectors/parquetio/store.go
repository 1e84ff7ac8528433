package parquetio

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// URLs
	"gocloud.dev/blob/memblob"
	_ "gocloud.dev/blob/s3blob" // s3:// URLs
	"gocloud.dev/gcerrors"

	"github.com/sluice-data/sluice/internal/commit"
)

// location is a parsed URL: a store and a path (a directory, a file or a
// glob) inside it.
type location struct {
	raw   string
	st    store
	path  string // local: absolute OS path; blob: key without leading or trailing "/"
	isURL bool
}

// store hides the difference between the local file system (paths are
// absolute OS paths; fsync and rename) and an object store through
// gocloud.dev/blob (paths are keys; copy and delete).
type store interface {
	// display names p for messages.
	display(p string) string
	join(elem ...string) string
	// stat reports whether p is a file (with its size) or a directory
	// (local) / key prefix with objects under it (blob).
	stat(ctx context.Context, p string) (isFile bool, size int64, exists bool, err error)
	// list lists the entries directly inside dir: files with their sizes
	// and subdirectories (names only).
	list(ctx context.Context, dir string) (files []entry, dirs []string, err error)
	openReader(ctx context.Context, p string, size int64, tail []byte, stats *Stats) (readerAt, error)
	create(ctx context.Context, p string) (fileWriter, error)
	// publish moves a closed file from staging to its final place.
	publish(ctx context.Context, from, to string) error
	remove(ctx context.Context, p string) error
	// removeAll removes dir and everything below it.
	removeAll(ctx context.Context, dir string) error
	// syncDirs makes renames in dirs durable (local only).
	syncDirs(dirs []string) error
	local() bool
}

type entry struct {
	name string
	size int64
}

// readerAt is what parquet.OpenFile reads from.
type readerAt interface {
	io.ReaderAt
	io.Closer
}

// fileWriter is a file being written. Close makes it durable (fsync on
// local disks; the upload's completion on object stores); Abort discards it.
type fileWriter interface {
	io.Writer
	Close() error
	Abort()
}

// parseLocation parses a local path, a glob, or a gocloud.dev/blob URL
// (scheme://bucket/prefix?params).
func parseLocation(ctx context.Context, raw string) (*location, error) {
	if raw == "" {
		return nil, fmt.Errorf("%w: empty URL", ErrConfig)
	}
	i := strings.Index(raw, "://")
	if i <= 0 || strings.ContainsAny(raw[:i], "/\\") {
		p, err := filepath.Abs(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		return &location{raw: raw, st: localStore{}, path: filepath.Clean(p)}, nil
	}
	scheme, rest := raw[:i], raw[i+3:]
	query := ""
	if j := strings.IndexByte(rest, '?'); j >= 0 {
		rest, query = rest[:j], rest[j+1:]
	}
	host, key := rest, ""
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		host, key = rest[:j], rest[j+1:]
	}
	key = strings.Trim(key, "/")
	if scheme == "file" {
		// A local path: the local store fsyncs and fences its commits,
		// which fileblob does not (DESIGN.md §5).
		if host != "" && host != "localhost" {
			return nil, fmt.Errorf("%w: file:// URLs take an absolute path (file:///dir), not host %q", ErrConfig, host)
		}
		if query != "" {
			return nil, fmt.Errorf("%w: file:// URLs take no parameters (%q)", ErrConfig, query)
		}
		return &location{raw: raw, st: localStore{}, path: filepath.Clean("/" + key), isURL: true}, nil
	}
	b, err := openBucket(ctx, scheme, host, query)
	if err != nil {
		return nil, fmt.Errorf("%w: opening bucket: %v", ErrConfig, err)
	}
	prefix := scheme + "://" + host + "/"
	return &location{raw: raw, st: &blobStore{b: b, prefix: prefix}, path: key, isURL: true}, nil
}

// Buckets are opened once per process and kept: mem:// buckets must be
// shared between the sinks that write them and the sources that read them,
// and object-store clients are worth reusing.
var buckets = struct {
	sync.Mutex
	m map[string]*blob.Bucket
}{m: map[string]*blob.Bucket{}}

func openBucket(ctx context.Context, scheme, host, query string) (*blob.Bucket, error) {
	id := scheme + "://" + host + "?" + query
	buckets.Lock()
	defer buckets.Unlock()
	if b, ok := buckets.m[id]; ok {
		return b, nil
	}
	var b *blob.Bucket
	var err error
	switch scheme {
	case "mem":
		if query != "" {
			return nil, fmt.Errorf("mem:// takes no parameters")
		}
		b = memblob.OpenBucket(&memblob.Options{NoMD5: true})
	case "file":
		// The bucket is the file system root, so that a sibling staging
		// directory of the output is inside it. Sidecar .attrs files are
		// not written, and temporary files stay next to their final path
		// (a rename across mounts would fail).
		if host != "" && host != "localhost" {
			return nil, fmt.Errorf("file:// URLs take an absolute path (file:///dir), not host %q", host)
		}
		q := query
		if !strings.Contains(q, "metadata=") {
			q = joinQuery(q, "metadata=skip")
		}
		if !strings.Contains(q, "no_tmp_dir=") {
			q = joinQuery(q, "no_tmp_dir=true")
		}
		b, err = blob.OpenBucket(ctx, "file:///?"+q)
	default:
		u := scheme + "://" + host
		if query != "" {
			u += "?" + query
		}
		b, err = blob.OpenBucket(ctx, u)
	}
	if err != nil {
		return nil, err
	}
	buckets.m[id] = b
	return b, nil
}

func joinQuery(q, kv string) string {
	if q == "" {
		return kv
	}
	return q + "&" + kv
}

// hidden reports whether a file or directory name is hidden from readers:
// _SUCCESS, _temporary, _sluice, .crc files and the like.
func hidden(name string) bool {
	return strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".")
}

// localStore is the local file system.
type localStore struct{}

func (localStore) display(p string) string    { return p }
func (localStore) join(elem ...string) string { return filepath.Join(elem...) }
func (localStore) local() bool                { return true }

func (localStore) stat(ctx context.Context, p string) (bool, int64, bool, error) {
	return commit.Local{}.Stat(ctx, p)
}

func (localStore) list(ctx context.Context, dir string) ([]entry, []string, error) {
	es, dirs, err := commit.Local{}.List(ctx, dir)
	files := make([]entry, len(es))
	for i, e := range es {
		files[i] = entry{name: e.Name, size: e.Size}
	}
	return files, dirs, err
}

func (localStore) openReader(_ context.Context, p string, _ int64, _ []byte, stats *Stats) (readerAt, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	return &localReader{f: f, stats: stats}, nil
}

type localReader struct {
	f     *os.File
	stats *Stats
}

func (r *localReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.f.ReadAt(p, off)
	if r.stats != nil {
		r.stats.BytesRead.Add(int64(n))
	}
	return n, err
}

func (r *localReader) Close() error { return r.f.Close() }

func (localStore) create(_ context.Context, p string) (fileWriter, error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return &localWriter{f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

type localWriter struct {
	f *os.File
	w *bufio.Writer
}

func (w *localWriter) Write(p []byte) (int, error) { return w.w.Write(p) }

func (w *localWriter) Close() error {
	err := w.w.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (w *localWriter) Abort() {
	_ = w.f.Close()
	_ = os.Remove(w.f.Name())
}

func (localStore) publish(_ context.Context, from, to string) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return rename(from, to)
}

// rename is os.Rename; tests inject failures (a cross-device rename).
var rename = os.Rename

func (localStore) remove(_ context.Context, p string) error {
	err := os.Remove(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (localStore) removeAll(_ context.Context, dir string) error { return os.RemoveAll(dir) }

func (localStore) syncDirs(dirs []string) error { return commit.Local{}.SyncDirs(dirs) }

// blobStore is a bucket of gocloud.dev/blob.
type blobStore struct {
	b      *blob.Bucket
	prefix string // scheme://bucket/, for messages
}

func (s *blobStore) display(p string) string { return s.prefix + p }
func (s *blobStore) local() bool             { return false }

func (s *blobStore) join(elem ...string) string {
	var parts []string
	for _, e := range elem {
		if e = strings.Trim(e, "/"); e != "" {
			parts = append(parts, e)
		}
	}
	return path.Join(parts...)
}

func (s *blobStore) stat(ctx context.Context, p string) (bool, int64, bool, error) {
	if p != "" {
		a, err := s.b.Attributes(ctx, p)
		if err == nil {
			return true, a.Size, true, nil
		}
		if gcerrors.Code(err) != gcerrors.NotFound {
			return false, 0, false, err
		}
	}
	it := s.b.List(&blob.ListOptions{Prefix: dirPrefix(p)})
	_, err := it.Next(ctx)
	if err == io.EOF {
		return false, 0, false, nil
	}
	if err != nil {
		return false, 0, false, err
	}
	return false, 0, true, nil
}

func dirPrefix(p string) string {
	if p == "" {
		return ""
	}
	return p + "/"
}

func (s *blobStore) list(ctx context.Context, dir string) ([]entry, []string, error) {
	prefix := dirPrefix(dir)
	it := s.b.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	var files []entry
	var dirs []string
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		name := strings.TrimSuffix(strings.TrimPrefix(obj.Key, prefix), "/")
		if name == "" {
			continue // a directory marker object
		}
		if obj.IsDir {
			dirs = append(dirs, name)
		} else {
			files = append(files, entry{name: name, size: obj.Size})
		}
	}
	return files, dirs, nil
}

func (s *blobStore) openReader(ctx context.Context, p string, size int64, tail []byte, stats *Stats) (readerAt, error) {
	return newBlobReader(ctx, s.b, p, size, tail, stats), nil
}

func (s *blobStore) create(ctx context.Context, p string) (fileWriter, error) {
	ctx, cancel := context.WithCancel(ctx)
	w, err := s.b.NewWriter(ctx, p, &blob.WriterOptions{ContentType: "application/vnd.apache.parquet"})
	if err != nil {
		cancel()
		return nil, err
	}
	return &blobWriter{w: w, cancel: cancel}, nil
}

type blobWriter struct {
	w      *blob.Writer
	cancel context.CancelFunc
}

func (w *blobWriter) Write(p []byte) (int, error) { return w.w.Write(p) }

func (w *blobWriter) Close() error {
	err := w.w.Close()
	w.cancel()
	return err
}

// Abort cancels the upload: a blob.Writer whose context ends before Close
// writes nothing.
func (w *blobWriter) Abort() {
	w.cancel()
	_ = w.w.Close()
}

func (s *blobStore) publish(ctx context.Context, from, to string) error {
	if err := s.b.Copy(ctx, to, from, nil); err != nil {
		return err
	}
	return s.remove(ctx, from)
}

func (s *blobStore) remove(ctx context.Context, p string) error {
	err := s.b.Delete(ctx, p)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil
	}
	return err
}

func (s *blobStore) removeAll(ctx context.Context, dir string) error {
	it := s.b.List(&blob.ListOptions{Prefix: dirPrefix(dir)})
	var errs []error
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := s.remove(ctx, obj.Key); err != nil {
			errs = append(errs, fmt.Errorf("deleting %s: %w", s.display(obj.Key), err))
		}
	}
	return errors.Join(errs...)
}

func (s *blobStore) syncDirs([]string) error { return nil }

// parent returns the directory that holds p, and p's last element.
func parent(st store, p string) (dir, base string) {
	if st.local() {
		return filepath.Dir(p), filepath.Base(p)
	}
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}
