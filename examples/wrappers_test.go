package examples

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/stages"
)

// hiddenMethods returns the methods of inner that outer, a wrapper of it,
// lacks or has with another signature.
func hiddenMethods(outer, inner reflect.Type) []string {
	var hidden []string
	for i := range inner.NumMethod() {
		m := inner.Method(i)
		om, ok := outer.MethodByName(m.Name)
		if !ok || !sameSignature(om.Type, m.Type) {
			hidden = append(hidden, m.Name)
		}
	}
	return hidden
}

// sameSignature compares two method types, receivers aside.
func sameSignature(a, b reflect.Type) bool {
	if a.NumIn() != b.NumIn() || a.NumOut() != b.NumOut() || a.IsVariadic() != b.IsVariadic() {
		return false
	}
	for i := 1; i < a.NumIn(); i++ {
		if a.In(i) != b.In(i) {
			return false
		}
	}
	for i := range a.NumOut() {
		if a.Out(i) != b.Out(i) {
			return false
		}
	}
	return true
}

// TestParquetWrappersKeepOptionalMethods checks that the bundled jobs'
// wrappers of the Parquet sink and its writers keep every method of what
// they wrap: the runtime finds optional interfaces (stages.Reverter on a
// writer, stages.JobCommitter and stages.JobFinisher on a sink, and any
// added later) by type assertion, and a wrapper that hid one would turn it
// off. It also checks each optional interface by name, over a writer that
// implements it.
func TestParquetWrappersKeepOptionalMethods(t *testing.T) {
	ctx := context.Background()
	fs := parquetio.Sink[User](filepath.Join(t.TempDir(), "users"), parquetio.Overwrite)
	rs := &reportingSink[User]{FileSink: fs}
	if hidden := hiddenMethods(reflect.TypeOf(rs), reflect.TypeOf(fs)); len(hidden) > 0 {
		t.Errorf("reportingSink hides the Parquet sink's %v", hidden)
	}
	for _, it := range []reflect.Type{reflect.TypeFor[stages.JobCommitter](), reflect.TypeFor[stages.JobFinisher]()} {
		if reflect.TypeOf(fs).Implements(it) && !reflect.TypeOf(rs).Implements(it) {
			t.Errorf("reportingSink is not a %v", it)
		}
	}

	inst := stages.Instance{Job: "wrappers", Run: "r1", Parallelism: 1}
	w, err := rs.Open(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := w.Abort(); err != nil {
			t.Error(err)
		}
		if err := rs.FinishJob(ctx, inst, true); err != nil {
			t.Error(err)
		}
	}()
	cw, ok := w.(*countingWriter[User])
	if !ok {
		t.Fatalf("reportingSink opened a %T, want a *countingWriter", w)
	}
	if hidden := hiddenMethods(reflect.TypeOf(cw), reflect.TypeOf(cw.Writer)); len(hidden) > 0 {
		t.Errorf("countingWriter hides the Parquet writer's %v", hidden)
	}

	// Each optional interface of a writer, by name.
	var total atomic.Int64
	rw := &revertible{}
	var wrapped stages.Writer[User] = &countingWriter[User]{Writer: rw, total: &total}
	for _, it := range []reflect.Type{reflect.TypeFor[stages.Reverter]()} {
		if !reflect.TypeOf(wrapped).Implements(it) {
			t.Errorf("countingWriter is not a %v", it)
		}
	}
	if err := wrapped.Write(make([]User, 3)); err != nil {
		t.Fatal(err)
	}
	if err := wrapped.Commit(); err != nil || total.Load() != 3 {
		t.Fatalf("commit: %v, total %d", err, total.Load())
	}
	r, ok := wrapped.(stages.Reverter)
	if !ok {
		t.Fatal("countingWriter cannot revert")
	}
	if err := r.Revert(); err != nil || !rw.reverted || total.Load() != 0 {
		t.Errorf("revert: %v, reached the writer %v, total %d", err, rw.reverted, total.Load())
	}
	// A writer that cannot revert says so through the wrapper too.
	wrapped = &countingWriter[User]{Writer: &plain{}, total: &total}
	if r, ok := wrapped.(stages.Reverter); ok {
		if err := r.Revert(); !errors.Is(err, stages.ErrNotReverted) {
			t.Errorf("reverting a writer that cannot: %v, want ErrNotReverted", err)
		}
	}
}

// plain is a writer with only the required methods.
type plain struct{}

func (*plain) Write([]User) error { return nil }
func (*plain) Prepare() error     { return nil }
func (*plain) Commit() error      { return nil }
func (*plain) Abort() error       { return nil }

// revertible is a writer that can revert.
type revertible struct {
	plain
	reverted bool
}

func (w *revertible) Revert() error { w.reverted = true; return nil }

var errLater = errors.New("a later commit failed")

// failingCommit is a sink whose job-level commit fails, after the Parquet
// sink's instances have committed.
type failingCommit struct{}

func (failingCommit) Open(context.Context, stages.Instance) (stages.Writer[User], error) {
	return &revertible{}, nil
}

func (failingCommit) CommitJob(context.Context, stages.Instance) error { return errLater }

// TestParquetOutputRevertedWhenALaterCommitFails runs a bundled job's
// Parquet sink (writeParquet) next to a sink whose commit fails once the
// Parquet files are published: the job fails with that error alone, the
// files are deleted and the output reads as the run before left it.
func TestParquetOutputRevertedWhenALaterCommitFails(t *testing.T) {
	out := filepath.Join(t.TempDir(), "users")
	users := func(from, to int64) []User {
		var us []User
		for i := from; i < to; i++ {
			us = append(us, User{UserID: i, Age: 30, Country: "DE"})
		}
		return us
	}
	printed := capture(t)
	first := users(0, 50)
	p := stages.NewPipeline("first")
	writeParquet(stages.FromSlice(p, first), "users", out, nil)
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2}); err != nil {
		t.Fatal(err)
	}

	p = stages.NewPipeline("second")
	s := stages.FromSlice(p, users(50, 5000))
	writeParquet(s, "users", out, nil)
	stages.Write(s, failingCommit{}, stages.Name("later"))
	_, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2})
	if !errors.Is(err, errLater) {
		t.Fatalf("error %v, want the later commit's", err)
	}
	if errors.Is(err, stages.ErrNotReverted) || strings.Contains(err.Error(), "reverting") {
		t.Errorf("the Parquet output was not reverted: %v", err)
	}
	got := allRows(readParquet[User](t, out))
	slices.SortFunc(got, func(a, b User) int { return int(a.UserID - b.UserID) })
	if !slices.Equal(got, first) {
		t.Errorf("after the failed run the output's files hold %d rows, want the first run's %d", len(got), len(first))
	}
	p = stages.NewPipeline("read")
	read := stages.Collect(parquetio.Read[User](p, out))
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2}); err != nil {
		t.Fatal(err)
	}
	if n := len(read.Values()); n != len(first) {
		t.Errorf("after the failed run a reader reads %d rows, want the first run's %d", n, len(first))
	}
	if n := strings.Count(printed.String(), "users: wrote 50 rows"); n != 1 {
		t.Errorf("printed %q, want one report of the first run's rows", printed)
	}
}
