package checkpoints

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Savepoints are checkpoints taken on request and kept until deleted
// (Manifest.Savepoint names one). A process asks the job that writes to a
// store for one by leaving a request in the store,
//
//	requests/savepoint/NAME
//
// which the job's process polls (Dir.SavepointRequests), so that a
// savepoint can be asked for from anywhere the store can be reached.
const requestPrefix = "requests/savepoint/"

var savepointName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ErrSavepointName is returned for a name that cannot name a savepoint.
var ErrSavepointName = errors.New("a savepoint's name is 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit, not all digits and not \"latest\"")

// CheckSavepointName checks that name can name a savepoint: not an ID
// (all digits) and not "latest", which --restore reads otherwise.
func CheckSavepointName(name string) error {
	if !savepointName.MatchString(name) || strings.Trim(name, "0123456789") == "" || name == "latest" {
		return fmt.Errorf("savepoint %q: %w", name, ErrSavepointName)
	}
	return nil
}

// Savepoint names the checkpoint a savepoint.
func (w *Writer) Savepoint(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.m.Savepoint = name
}

// RequestSavepoint asks the job that checkpoints to the store for a
// savepoint named name.
func (d *Dir) RequestSavepoint(ctx context.Context, name string) error {
	if err := CheckSavepointName(name); err != nil {
		return err
	}
	if m, err := d.FindSavepoint(ctx, name); err != nil {
		return err
	} else if m != nil {
		return fmt.Errorf("savepoint %q: %s holds one already (checkpoint %d)", name, d.store, m.ID)
	}
	if err := d.store.Put(ctx, requestPrefix+name, []byte(name), true); err != nil {
		if errors.Is(err, ErrExist) {
			return fmt.Errorf("savepoint %q: %s holds a request for one already", name, d.store)
		}
		return fmt.Errorf("savepoint %q: writing the request to %s: %w", name, d.store, err)
	}
	return nil
}

// SavepointRequests returns the names of the savepoints asked for and not
// yet taken, sorted.
func (d *Dir) SavepointRequests(ctx context.Context) ([]string, error) {
	keys, err := d.store.List(ctx, requestPrefix)
	if err != nil {
		return nil, fmt.Errorf("checkpoints: listing the savepoint requests in %s: %w", d.store, err)
	}
	var names []string
	for _, k := range keys {
		if name := strings.TrimPrefix(k, requestPrefix); CheckSavepointName(name) == nil {
			names = append(names, name)
		}
	}
	return names, nil
}

// DropRequest deletes the request for savepoint name: it was taken, or
// could not be.
func (d *Dir) DropRequest(ctx context.Context, name string) error {
	return d.store.Delete(ctx, requestPrefix+name)
}

// Savepoints returns the manifests of the complete savepoints, oldest
// first.
func (d *Dir) Savepoints(ctx context.Context) ([]*Manifest, error) {
	ids, keys, err := d.ids(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Manifest
	for _, id := range ids {
		if !hasManifest(id, keys[id]) {
			continue
		}
		m, err := d.complete(ctx, id, keys[id])
		if err != nil {
			return nil, err
		}
		if m != nil && m.Savepoint != "" {
			out = append(out, m)
		}
	}
	return out, nil
}

// FindSavepoint returns the manifest of the complete savepoint named
// name, or nil.
func (d *Dir) FindSavepoint(ctx context.Context, name string) (*Manifest, error) {
	sps, err := d.Savepoints(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range sps {
		if m.Savepoint == name {
			return m, nil
		}
	}
	return nil, nil
}

// DeleteSavepoint deletes the savepoint named name.
func (d *Dir) DeleteSavepoint(ctx context.Context, name string) error {
	m, err := d.FindSavepoint(ctx, name)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("%w: %s holds no savepoint %q", ErrInvalid, d.store, name)
	}
	return d.deleteAll(ctx, m.ID)
}

// failedPrefix holds, for a request that the job could not serve, why.
const failedPrefix = "requests/savepoint-failed/"

// FailRequest replaces the request for savepoint name with why it could
// not be taken, for the process that asked (RequestFailed).
func (d *Dir) FailRequest(ctx context.Context, name string, why error) error {
	if err := d.store.Put(ctx, failedPrefix+name, []byte(why.Error()), false); err != nil {
		return err
	}
	return d.DropRequest(ctx, name)
}

// RequestFailed returns why the job could not take savepoint name, if it
// said so, and deletes what it said.
func (d *Dir) RequestFailed(ctx context.Context, name string) (string, bool, error) {
	b, err := d.store.Get(ctx, failedPrefix+name)
	if errors.Is(err, ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return string(b), true, d.store.Delete(ctx, failedPrefix+name)
}
