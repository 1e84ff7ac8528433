// Package commit is the commit protocol of Sluice's file outputs (Parquet,
// JSON lines): a directory of data files whose current snapshot is named by
// a manifest, written by one run at a time under a lease.
//
// The layout of an output directory OUT:
//
//	OUT/_SUCCESS                  the manifest: the files of the current snapshot
//	OUT/_sluice/lease/<epoch>     leases, one file per epoch; the highest is current
//	OUT/_sluice/                  local outputs: its flock serializes compare-and-swap writes
//	OUT/_sluice/staging/<run>/    a run's files before they are published
//	OUT/day=.../part-*.parquet    published data files
//
// A run takes the lease (a new epoch, created only if absent), stages its
// files under _sluice (named so that no *.parquet glob matches them),
// publishes them under OUT, and then switches the snapshot in one step: it
// replaces the manifest, conditionally on the manifest it read when it took
// the lease. Files the new snapshot no longer lists are deleted only after
// the whole job has committed. A run that dies leaves the old snapshot in
// the manifest; the next run to take the lease deletes what it left.
//
// Staging inside OUT keeps every rename on OUT's own file system, so an
// output at the root of a mount (a container volume) works.
package commit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// Errors of the storage layer.
var (
	// ErrNotExist is wrapped when a file does not exist.
	ErrNotExist = fs.ErrNotExist
	// ErrPrecondition is wrapped when a conditional write finds the file
	// in another state than the condition names.
	ErrPrecondition = errors.New("commit: precondition failed")
)

// Cond is the condition of a write.
type Cond struct {
	// IfAbsent: the file must not exist.
	IfAbsent bool
	// IfMatch, when not empty: the file must have this version.
	IfMatch string
	// Fence, when set, runs just before the write and fails it with its
	// error; on a local file system it runs under the output's lock, so
	// that a check and the write are one step for every Sluice process.
	Fence func(ctx context.Context) error
	// Lock names the directory whose lock a local conditional write
	// holds (the output's _sluice); empty: p's directory.
	Lock string
}

// Entry is a file found by List.
type Entry struct {
	Name string
	Size int64
}

// FS is the storage of an output: a local file system or an object store.
// Paths are what Join makes; a local FS takes absolute OS paths.
type FS interface {
	// Local reports whether paths are OS paths.
	Local() bool
	Join(elem ...string) string
	// Display names p for messages.
	Display(p string) string
	// Stat reports whether p is a file (with its size), a directory (or
	// a key prefix with objects under it), or nothing.
	Stat(ctx context.Context, p string) (isFile bool, size int64, exists bool, err error)
	// List lists the entries directly inside dir.
	List(ctx context.Context, dir string) (files []Entry, dirs []string, err error)
	// ReadFile reads a small file whole with its version; ErrNotExist if
	// absent.
	ReadFile(ctx context.Context, p string) (data []byte, version string, err error)
	// WriteFile replaces p whole and durably under cond, returning the
	// new version; ErrPrecondition if cond does not hold.
	WriteFile(ctx context.Context, p string, data []byte, cond Cond) (version string, err error)
	// Publish moves a closed file from staging to its final place.
	Publish(ctx context.Context, from, to string) error
	// Remove removes a file; a missing one is not an error.
	Remove(ctx context.Context, p string) error
	// RemoveAll removes dir and everything below it.
	RemoveAll(ctx context.Context, dir string) error
	// SyncDirs makes the renames in dirs durable (local only).
	SyncDirs(dirs []string) error
}

const osSeparator = os.PathSeparator

// Local is the local file system.
type Local struct{}

var _ FS = Local{}

func (Local) Local() bool                { return true }
func (Local) Join(elem ...string) string { return filepath.Join(elem...) }
func (Local) Display(p string) string    { return p }

func (Local) Stat(_ context.Context, p string) (bool, int64, bool, error) {
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, 0, false, nil
	}
	if err != nil {
		return false, 0, false, err
	}
	return !fi.IsDir(), fi.Size(), true, nil
}

func (Local) List(_ context.Context, dir string) ([]Entry, []string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var files []Entry
	var dirs []string
	for _, de := range des {
		switch {
		case de.IsDir():
			dirs = append(dirs, de.Name())
		case de.Type().IsRegular():
			fi, err := de.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // removed since ReadDir
				}
				return nil, nil, err
			}
			files = append(files, Entry{Name: de.Name(), Size: fi.Size()})
		}
	}
	return files, dirs, nil
}

// ContentVersion is the version of a file in a store without ETags (a
// local file system, an in-process bucket): a hash of its content.
func ContentVersion(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:12])
}

func (Local) ReadFile(_ context.Context, p string) ([]byte, string, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, "", err
	}
	return data, ContentVersion(data), nil
}

// WriteFile writes a temporary file beside p, syncs it and links (when
// IfAbsent: an existing p fails the link) or renames it into place, under
// the lock of the output that holds p when the write is conditional.
func (l Local) WriteFile(ctx context.Context, p string, data []byte, cond Cond) (string, error) {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if cond.IfMatch != "" || cond.Fence != nil {
		lock := cond.Lock
		if lock == "" {
			lock = dir
		}
		unlock, err := lockFile(lock)
		if err != nil {
			return "", err
		}
		defer unlock()
	}
	if cond.Fence != nil {
		if err := cond.Fence(ctx); err != nil {
			return "", err
		}
	}
	if cond.IfMatch != "" {
		cur, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%s: %w: it no longer exists", p, ErrPrecondition)
		}
		if err != nil {
			return "", err
		}
		if ContentVersion(cur) != cond.IfMatch {
			return "", fmt.Errorf("%s: %w: it was changed by another writer", p, ErrPrecondition)
		}
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(p)+".*.tmp")
	if err != nil {
		return "", err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if cond.IfAbsent {
			err = os.Link(tmp.Name(), p)
			if errors.Is(err, fs.ErrExist) {
				err = fmt.Errorf("%s: %w: it exists", p, ErrPrecondition)
			}
			_ = os.Remove(tmp.Name())
		} else {
			err = os.Rename(tmp.Name(), p)
		}
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return "", err
	}
	if err := syncDir(dir); err != nil {
		return "", err
	}
	return ContentVersion(data), nil
}

// lockFile takes the exclusive lock (flock) of a directory, held by the
// kernel for the open directory, so that a process that dies releases it.
// Locking the directory itself, not a file in it, lets the directory be
// removed once empty.
func lockFile(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

func (Local) Publish(_ context.Context, from, to string) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.Rename(from, to)
}

func (Local) Remove(_ context.Context, p string) error {
	err := os.Remove(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (Local) RemoveAll(_ context.Context, dir string) error { return os.RemoveAll(dir) }

func (Local) SyncDirs(dirs []string) error {
	sort.Strings(dirs)
	for _, d := range dirs {
		if err := syncDir(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func syncDir(d string) error {
	f, err := os.Open(d)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", d, err)
	}
	return nil
}
