package bench

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sluice-data/sluice/examples"
)

// The plain-Go baselines: what an engineer would write for each workload
// with parquet-go and Go maps, reading the same files and writing the same
// output on the given number of goroutines, like the peers' plain Go
// (DESIGN.md §6). The writer uses parquet-go's own Snappy codec, as the
// peers' does.

// workers is the goroutines of a baseline: the peers' plain Go uses two.
const workers = 2

// dataFiles returns the Parquet files under dir, sorted, skipping hidden
// names (_SUCCESS, staging directories) as readers do.
func dataFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name := d.Name(); path != dir && (strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".")) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() && strings.HasSuffix(path, ".parquet") {
			out = append(out, path)
		}
		return nil
	})
	sort.Strings(out)
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("no Parquet files under %s", dir)
	}
	return out, err
}

// rowGroups is the row groups of the Parquet files under a directory.
type rowGroups struct {
	files  []*os.File
	groups []parquet.RowGroup
	dirs   []string // the directory of each group's file, relative to the root
}

func openRowGroups(dir string) (*rowGroups, error) {
	paths, err := dataFiles(dir)
	if err != nil {
		return nil, err
	}
	rg := &rowGroups{}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			rg.close()
			return nil, err
		}
		rg.files = append(rg.files, f)
		st, err := f.Stat()
		if err != nil {
			rg.close()
			return nil, err
		}
		pf, err := parquet.OpenFile(f, st.Size())
		if err != nil {
			rg.close()
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		rel, _ := filepath.Rel(dir, filepath.Dir(p))
		for _, g := range pf.RowGroups() {
			rg.groups = append(rg.groups, g)
			rg.dirs = append(rg.dirs, rel)
		}
	}
	return rg, nil
}

func (rg *rowGroups) close() {
	for _, f := range rg.files {
		f.Close()
	}
}

// scan reads the row groups as T on n goroutines, goroutine w taking groups
// w, w+n, …, and calls fn with each batch it reads and the group's
// directory.
func scan[T any](rg *rowGroups, n int, fn func(w int, dir string, rows []T)) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			buf := make([]T, 4096)
			for i := w; i < len(rg.groups); i += n {
				r := parquet.NewGenericRowGroupReader[T](rg.groups[i])
				for {
					k, err := r.Read(buf)
					if k > 0 {
						fn(w, rg.dirs[i], buf[:k])
					}
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						errs[w] = err
						r.Close()
						return
					}
				}
				r.Close()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// fileWriter writes one Parquet file, buffering rows.
type fileWriter[T any] struct {
	f   *os.File
	w   *parquet.GenericWriter[T]
	buf []T
}

func createWriter[T any](path string) (*fileWriter[T], error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &fileWriter[T]{f: f, w: parquet.NewGenericWriter[T](f, parquet.Compression(&parquet.Snappy),
		parquet.MaxRowsPerRowGroup(128<<10)), buf: make([]T, 0, 4096)}, nil
}

func (w *fileWriter[T]) write(x T) error {
	w.buf = append(w.buf, x)
	if len(w.buf) == cap(w.buf) {
		return w.flush()
	}
	return nil
}

func (w *fileWriter[T]) flush() error {
	_, err := w.w.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}

func (w *fileWriter[T]) close() error {
	return errors.Join(w.flush(), w.w.Close(), w.f.Close())
}

// plainW1 joins the orders with the users into out/day=YYYY-MM-DD/ files.
func plainW1(ordersDir, usersDir, out string) error {
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	ug, err := openRowGroups(usersDir)
	if err != nil {
		return err
	}
	defer ug.close()
	parts := make([][]examples.User, workers)
	if err := scan(ug, workers, func(w int, _ string, rows []examples.User) { parts[w] = append(parts[w], rows...) }); err != nil {
		return err
	}
	users := make(map[int64]examples.User, len(parts[0])+len(parts[1]))
	for _, p := range parts {
		for _, u := range p {
			users[u.UserID] = u
		}
	}
	parts = nil

	og, err := openRowGroups(ordersDir)
	if err != nil {
		return err
	}
	defer og.close()
	writers := make([]map[int64]*fileWriter[examples.OrderUser], workers)
	errs := make([]error, workers)
	for w := range writers {
		writers[w] = map[int64]*fileWriter[examples.OrderUser]{}
	}
	err = scan(og, workers, func(w int, _ string, rows []examples.Order) {
		if errs[w] != nil {
			return
		}
		ws := writers[w]
		for _, o := range rows {
			u, ok := users[o.UserID]
			if !ok {
				continue
			}
			day := floorDiv(o.TS, 86_400_000)
			fw := ws[day]
			if fw == nil {
				name := time.UnixMilli(day * 86_400_000).UTC().Format(time.DateOnly)
				fw, errs[w] = createWriter[examples.OrderUser](filepath.Join(out, "day="+name, fmt.Sprintf("part-%d.parquet", w)))
				if errs[w] != nil {
					return
				}
				ws[day] = fw
			}
			if errs[w] = fw.write(examples.OrderUser{UserID: o.UserID, OrderID: o.OrderID, TS: o.TS, Amount: o.Amount,
				Age: u.Age, Country: u.Country, LifetimeValue: u.LifetimeValue}); errs[w] != nil {
				return
			}
		}
	})
	for _, ws := range writers {
		for _, fw := range ws {
			errs = append(errs, fw.close())
		}
	}
	return errors.Join(append(errs, err)...)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// aggregate folds rows into per-goroutine maps split by key hash, merges
// each part on its own goroutine and writes it as out/part-P.parquet.
func aggregate[T any, K comparable, O any](rg *rowGroups, out string, key func(T) K, hash func(K) uint64,
	lift func(T) examples.Tally, output func(K, examples.Tally) O) error {
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	maps := make([][workers]map[K]examples.Tally, workers)
	for w := range maps {
		for p := range maps[w] {
			maps[w][p] = map[K]examples.Tally{}
		}
	}
	err := scan(rg, workers, func(w int, _ string, rows []T) {
		m := &maps[w]
		for _, x := range rows {
			k := key(x)
			part := m[hash(k)%workers]
			part[k] = part[k].Merge(lift(x))
		}
	})
	if err != nil {
		return err
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for p := range workers {
		wg.Go(func() {
			all := maps[0][p]
			for w := 1; w < workers; w++ {
				for k, t := range maps[w][p] {
					all[k] = all[k].Merge(t)
				}
			}
			fw, err := createWriter[O](filepath.Join(out, fmt.Sprintf("part-%d.parquet", p)))
			if err != nil {
				errs[p] = err
				return
			}
			for k, t := range all {
				if err := fw.write(output(k, t)); err != nil {
					errs[p] = err
					break
				}
			}
			errs[p] = errors.Join(errs[p], fw.close())
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// plainW2 counts and sums the orders of each user.
func plainW2(ordersDir, out string) error {
	rg, err := openRowGroups(ordersDir)
	if err != nil {
		return err
	}
	defer rg.close()
	return aggregate(rg, out, func(o examples.Order) int64 { return o.UserID }, func(k int64) uint64 { return mix64(uint64(k)) },
		func(o examples.Order) examples.Tally { return examples.Tally{Cnt: 1, Sum: o.Amount} },
		func(k int64, t examples.Tally) examples.UserTotal {
			return examples.UserTotal{UserID: k, Cnt: t.Cnt, SumAmount: t.Sum}
		})
}

// userMinute is a user and a window start in unix milliseconds.
type userMinute struct{ user, start int64 }

// plainW3 counts and sums the events of each user in each minute: the
// batch answer, which the streaming one equals when no event is late.
func plainW3(eventsDir, out string) error {
	rg, err := openRowGroups(eventsDir)
	if err != nil {
		return err
	}
	defer rg.close()
	return aggregate(rg, out, func(e examples.Event) userMinute { return userMinute{e.UserID, e.TS - mod(e.TS, 60_000)} },
		func(k userMinute) uint64 { return mix64(uint64(k.user)*0x9e3779b97f4a7c15 ^ uint64(k.start)) },
		func(e examples.Event) examples.Tally { return examples.Tally{Cnt: 1, Sum: e.Amount} },
		func(k userMinute, t examples.Tally) examples.UserWindow {
			return examples.UserWindow{UserID: k.user, WindowStart: k.start, Cnt: t.Cnt, SumAmount: t.Sum}
		})
}

func mod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// mix64 is SplitMix64's finaliser.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func cents(x float64) int64 { return int64(math.Round(x * 100)) }

// checksum is an order-independent digest of an output: its rows and the
// sum of a hash of each row, amounts in integer cents.
type checksum struct {
	Rows int64
	Sum  uint64
}

// digest reads the output under dir as T and digests each row (with its
// file's directory, for partitioned outputs) with h.
func digest[T any](dir string, h func(dir string, x T) uint64) (checksum, error) {
	rg, err := openRowGroups(dir)
	if err != nil {
		return checksum{}, err
	}
	defer rg.close()
	var mu sync.Mutex
	var c checksum
	err = scan(rg, workers, func(_ int, d string, rows []T) {
		var s uint64
		for _, x := range rows {
			s += h(d, x)
		}
		mu.Lock()
		c.Rows += int64(len(rows))
		c.Sum += s
		mu.Unlock()
	})
	return c, err
}

func hashAll(xs ...int64) uint64 {
	h := uint64(0x243f6a8885a308d3)
	for _, x := range xs {
		h = mix64(h ^ uint64(x))
	}
	return h
}

func hashString(s string) int64 {
	h := uint64(14695981039346656037)
	for i := range len(s) {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return int64(h)
}

func digestW1(dir string) (checksum, error) {
	return digest(dir, func(d string, r examples.OrderUser) uint64 {
		return hashAll(hashString(d), r.UserID, r.OrderID, r.TS, cents(r.Amount), int64(r.Age), hashString(r.Country), cents(r.LifetimeValue))
	})
}

func digestW2(dir string) (checksum, error) {
	return digest(dir, func(_ string, r examples.UserTotal) uint64 { return hashAll(r.UserID, r.Cnt, cents(r.SumAmount)) })
}

func digestW3(dir string) (checksum, error) {
	return digest(dir, func(_ string, r examples.UserWindow) uint64 {
		return hashAll(r.UserID, r.WindowStart, r.Cnt, cents(r.SumAmount))
	})
}
