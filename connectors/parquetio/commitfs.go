package parquetio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/sluice-data/sluice/internal/commit"
)

// commitFS is a store as the commit protocol sees it.
func commitFS(st store) commit.FS {
	if b, ok := st.(*blobStore); ok {
		return blobFS{b}
	}
	return commit.Local{}
}

// blobFS is a bucket as commit.FS. On S3 a conditional write is a PUT with
// If-None-Match: * or If-Match on the ETag read; mem:// buckets live in
// this process, so a mutex makes their conditional writes atomic.
type blobFS struct{ s *blobStore }

func (f blobFS) Local() bool                { return false }
func (f blobFS) Join(elem ...string) string { return f.s.join(elem...) }
func (f blobFS) Display(p string) string    { return f.s.display(p) }
func (f blobFS) Stat(ctx context.Context, p string) (bool, int64, bool, error) {
	return f.s.stat(ctx, p)
}

func (f blobFS) List(ctx context.Context, dir string) ([]commit.Entry, []string, error) {
	files, dirs, err := f.s.list(ctx, dir)
	out := make([]commit.Entry, len(files))
	for i, e := range files {
		out[i] = commit.Entry{Name: e.name, Size: e.size}
	}
	return out, dirs, err
}

func (f blobFS) s3() bool { return strings.HasPrefix(f.s.prefix, "s3://") }

func (f blobFS) ReadFile(ctx context.Context, p string) ([]byte, string, error) {
	r, err := f.s.b.NewReader(ctx, p, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, "", fmt.Errorf("%s: %w", f.s.display(p), commit.ErrNotExist)
	}
	if err != nil {
		return nil, "", err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, "", err
	}
	if f.s3() {
		var out s3.GetObjectOutput
		if r.As(&out) && out.ETag != nil {
			return data, *out.ETag, nil
		}
		return nil, "", fmt.Errorf("%s: the object store returned no ETag", f.s.display(p))
	}
	return data, commit.ContentVersion(data), nil
}

// memLocks serializes the conditional writes of buckets other than S3's
// (mem://), which live in this process.
var memLocks sync.Mutex

func (f blobFS) WriteFile(ctx context.Context, p string, data []byte, cond commit.Cond) (string, error) {
	if !f.s3() {
		memLocks.Lock()
		defer memLocks.Unlock()
		if cond.Fence != nil {
			if err := cond.Fence(ctx); err != nil {
				return "", err
			}
		}
		_, v, err := f.ReadFile(ctx, p)
		exists := err == nil
		if err != nil && !errors.Is(err, commit.ErrNotExist) {
			return "", err
		}
		switch {
		case cond.IfAbsent && exists:
			return "", fmt.Errorf("%s: %w: it exists", f.s.display(p), commit.ErrPrecondition)
		case cond.IfMatch != "" && (!exists || v != cond.IfMatch):
			return "", fmt.Errorf("%s: %w: it was changed by another writer", f.s.display(p), commit.ErrPrecondition)
		}
		if err := f.put(ctx, p, data, nil); err != nil {
			return "", err
		}
		return commit.ContentVersion(data), nil
	}
	if cond.Fence != nil {
		if err := cond.Fence(ctx); err != nil {
			return "", err
		}
	}
	err := f.put(ctx, p, data, func(in *transfermanager.UploadObjectInput) {
		if cond.IfAbsent {
			in.IfNoneMatch = ptr("*")
		}
		if cond.IfMatch != "" {
			in.IfMatch = ptr(cond.IfMatch)
		}
	})
	if err != nil {
		code := gcerrors.Code(err)
		if code == gcerrors.FailedPrecondition || strings.Contains(err.Error(), "PreconditionFailed") ||
			strings.Contains(err.Error(), "412") || (cond.IfAbsent && code == gcerrors.AlreadyExists) {
			return "", fmt.Errorf("%s: %w: %v", f.s.display(p), commit.ErrPrecondition, err)
		}
		return "", err
	}
	a, err := f.s.b.Attributes(ctx, p)
	if err != nil {
		return "", err
	}
	return a.ETag, nil
}

func ptr[T any](v T) *T { return &v }

func (f blobFS) put(ctx context.Context, p string, data []byte, set func(*transfermanager.UploadObjectInput)) error {
	opts := &blob.WriterOptions{ContentType: "application/json"}
	if set != nil {
		opts.BeforeWrite = func(as func(any) bool) error {
			var in *transfermanager.UploadObjectInput
			if !as(&in) {
				return errors.New("parquetio: the S3 driver gave no upload input to make the write conditional")
			}
			set(in)
			return nil
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := f.s.b.NewWriter(ctx, p, opts)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		cancel()
		_ = w.Close()
		return err
	}
	return w.Close()
}

func (f blobFS) Publish(ctx context.Context, from, to string) error {
	return f.s.publish(ctx, from, to)
}
func (f blobFS) Remove(ctx context.Context, p string) error      { return f.s.remove(ctx, p) }
func (f blobFS) RemoveAll(ctx context.Context, dir string) error { return f.s.removeAll(ctx, dir) }
func (f blobFS) SyncDirs([]string) error                         { return nil }
