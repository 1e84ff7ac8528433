package parquetio

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/sluice-data/sluice/internal/commit"
	"github.com/sluice-data/sluice/stages"
)

// Read adds a stage that reads the Parquet files at url as records of type
// T, a struct whose fields are tagged as parquet-go reads them. See the
// package documentation for the URL forms; opts add filters (Where), stats
// and stage options.
func Read[T any](p *stages.Pipeline, url string, opts ...ReadOption) stages.Stream[T] {
	src := Source[T](url, opts...)
	if err := src.Err(); err != nil {
		p.Errorf("%v", err)
	}
	return stages.Read[T](p, src, src.cfg.stageOpts...)
}

// FileSource reads Parquet files as records of type T. It implements
// stages.Source[T]: Splits lists the files, prunes partitions, reads the
// footers and makes one split per surviving row group; Open reads one.
type FileSource[T any] struct {
	url string
	cfg readConfig
	rec *record
	err error

	mu  sync.Mutex
	loc *location
}

// fileMeta is what Splits learned about a file and Open reuses.
type fileMeta struct {
	file  *dataFile
	tail  []byte // an object-store file's footer
	fit   *fileFit
	bound []*boundFilter
	proj  *parquet.Schema // the filter columns, for exact filtering
	cols  []int           // file column indexes that a split reads
}

// dataFile is a listed data file.
type dataFile struct {
	path  string
	size  int64
	parts []partition
}

// splitData is a split: a row group of a file, and the row ranges of it
// that the page index could not rule out.
type splitData struct {
	meta     *fileMeta
	rowGroup int
	ranges   []rowRange // nil: all rows
	filter   bool       // filter rows exactly
}

type rowRange struct{ start, end int64 }

// Source returns a source reading the Parquet files at url as records of
// type T. A configuration error (a bad option or URL) is returned by Err
// and by Splits.
func Source[T any](url string, opts ...ReadOption) *FileSource[T] {
	s := &FileSource[T]{url: url}
	for _, o := range opts {
		if o != nil {
			o.applyRead(&s.cfg)
		}
	}
	var err error
	s.rec, err = recordOf[T]()
	if s.rec != nil {
		s.rec.truncate = s.cfg.truncateTimes
	}
	s.err = errors.Join(append(s.cfg.errs, err)...)
	if s.err != nil {
		s.err = fmt.Errorf("reading %s: %w", url, s.err)
	}
	return s
}

// Err reports a configuration error.
func (s *FileSource[T]) Err() error { return s.err }

func (s *FileSource[T]) location(ctx context.Context) (*location, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loc == nil {
		loc, err := parseLocation(ctx, s.url)
		if err != nil {
			return nil, err
		}
		s.loc = loc
	}
	return s.loc, nil
}

func (s *FileSource[T]) stats() *Stats {
	if s.cfg.stats != nil {
		return s.cfg.stats
	}
	return &discard
}

// discard absorbs the counts of a source or sink without WithStats.
var discard Stats

// Splits implements stages.Source.
func (s *FileSource[T]) Splits(ctx context.Context) ([]stages.Split, error) {
	if s.err != nil {
		return nil, s.err
	}
	loc, err := s.location(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", s.url, err)
	}
	files, err := s.list(ctx, loc)
	if err != nil {
		return nil, err
	}
	// Read the footers, several at a time (object stores have latency).
	per := make([][]stages.Split, len(files))
	errs := make([]error, len(files))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(8, len(files)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				per[i], errs[i] = s.fileSplits(ctx, loc, files[i])
			}
		}()
	}
	for i := range files {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []stages.Split
	for _, ss := range per {
		for _, sp := range ss {
			sp.Index = len(out)
			out = append(out, sp)
		}
	}
	return out, nil
}

// list finds the data files at loc: one file, the files below a directory,
// or those matching a glob; hidden names (_*, .*) are skipped and Hive
// partition directories that fail a filter are pruned without being
// listed further.
func (s *FileSource[T]) list(ctx context.Context, loc *location) ([]*dataFile, error) {
	st := loc.st
	root, pattern := splitGlob(loc)
	if pattern == nil {
		isFile, size, exists, err := st.stat(ctx, root)
		if err != nil {
			return nil, fmt.Errorf("parquetio: %s: %w", st.display(root), err)
		}
		if !exists {
			return nil, fmt.Errorf("%s: %w", st.display(root), ErrNotFound)
		}
		if isFile {
			s.stats().FilesListed.Add(1)
			return []*dataFile{{path: root, size: size}}, nil
		}
	}
	// A Sluice output is read as exactly the files its manifest lists
	// (also when url names a partition directory below it).
	var snap *commit.Snapshot
	if !s.cfg.ignoreManifest {
		var err error
		if snap, err = commit.FindSnapshot(ctx, commitFS(st), root); err != nil {
			return nil, fmt.Errorf("parquetio: %w", err)
		}
	}
	var listed map[string]bool // the manifest's files below root
	if snap != nil {
		listed = map[string]bool{}
		for _, f := range snap.Files(commitFS(st)) {
			listed[f] = false
		}
	}
	var out []*dataFile
	var pruned []string
	var walk func(dir string, rel []string) error
	walk = func(dir string, rel []string) error {
		files, dirs, err := st.list(ctx, dir)
		if err != nil {
			return fmt.Errorf("parquetio: listing %s: %w", st.display(dir), err)
		}
		depth := len(rel)
		slices.Sort(dirs)
		for _, d := range dirs {
			if hidden(d) || (depth < len(pattern) && !matchSegment(pattern[depth], d)) {
				continue
			}
			keep, err := s.keepPartition(d)
			if err != nil {
				return fmt.Errorf("%s: %w", st.display(st.join(dir, d)), err) // err has the sentinel
			}
			if !keep {
				s.stats().PartitionsPruned.Add(1)
				pruned = append(pruned, st.join(dir, d))
				continue
			}
			if err := walk(st.join(dir, d), append(rel[:depth:depth], d)); err != nil {
				return err
			}
		}
		slices.SortFunc(files, func(a, b entry) int { return strings.Compare(a.name, b.name) })
		for _, f := range files {
			if hidden(f.name) || depth < len(pattern)-1 ||
				(depth == len(pattern)-1 && !matchSegment(pattern[depth], f.name)) {
				continue
			}
			p := st.join(dir, f.name)
			if listed != nil {
				if _, ok := listed[p]; !ok {
					continue // not in the snapshot: another run's, or not Sluice's
				}
				listed[p] = true
			}
			s.stats().FilesListed.Add(1)
			out = append(out, &dataFile{path: p, size: f.size, parts: parsePartitions(rel)})
		}
		return nil
	}
	if pattern != nil {
		if _, _, exists, err := st.stat(ctx, root); err != nil {
			return nil, err
		} else if !exists {
			return nil, fmt.Errorf("%s: %w", st.display(root), ErrNotFound)
		}
	}
	if err := walk(root, nil); err != nil {
		return nil, err
	}
	if listed != nil && pattern == nil {
		var missing []string
		for p, seen := range listed {
			if !seen && !slices.ContainsFunc(pruned, func(d string) bool {
				return strings.HasPrefix(p, d+"/") || strings.HasPrefix(p, d+string(filepath.Separator))
			}) {
				missing = append(missing, st.display(p))
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			return nil, fmt.Errorf("%s: %w: the manifest %s lists %d files that are missing, first %s",
				st.display(root), ErrCorrupt, st.display(st.join(snap.Root, commit.ManifestName)), len(missing), missing[0])
		}
	}
	if pattern != nil && len(out) == 0 {
		return nil, fmt.Errorf("%s: %w: no file matches", s.url, ErrNotFound)
	}
	if len(out) == 0 && snap == nil && len(pruned) == 0 && !s.cfg.allowEmpty {
		return nil, fmt.Errorf("%s: %w: the directory holds no data files and no Sluice manifest (pass parquetio.AllowEmpty() to read it as empty)", st.display(root), ErrNotFound)
	}
	return out, nil
}

// splitGlob splits a path at its first segment with glob characters.
func splitGlob(loc *location) (root string, pattern []string) {
	p := loc.path
	sep := "/"
	segs := strings.Split(p, sep)
	for i, seg := range segs {
		if strings.ContainsAny(seg, "*?[") {
			root = strings.Join(segs[:i], sep)
			if loc.st.local() && root == "" {
				root = "/"
			}
			return root, segs[i:]
		}
	}
	return p, nil
}

func matchSegment(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return ok && err == nil
}

// keepPartition tests a directory name against the filters on its key.
func (s *FileSource[T]) keepPartition(dir string) (bool, error) {
	parts := parsePartitions([]string{dir})
	if len(parts) == 0 {
		return true, nil
	}
	for _, f := range s.cfg.filters {
		if len(f.path) != 1 || f.path[0] != parts[0].key {
			continue
		}
		ok, err := f.matchPartition(parts[0].value)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func (s *FileSource[T]) opened(file string) {
	s.stats().FilesOpened.Add(1)
	if s.cfg.onOpen != nil {
		s.cfg.onOpen(file)
	}
}

// openFile opens a data file's footer. parquet-go panics on some damaged
// input; the panic is fenced here.
func openFile(r readerAt, size int64, blob bool) (f *parquet.File, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: parquet-go panicked opening it: %v", ErrCorrupt, p)
		}
	}()
	f, err = parquet.OpenFile(r, size,
		parquet.SkipPageIndex(true), // read lazily, for filtered columns only
		parquet.SkipBloomFilters(true),
		parquet.SkipMagicBytes(blob), // the footer's magic is checked; save a GET
		parquet.ReadBufferSize(256<<10))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return f, nil
}

// fileSplits reads one file's footer and makes its splits.
func (s *FileSource[T]) fileSplits(ctx context.Context, loc *location, df *dataFile) ([]stages.Split, error) {
	st := loc.st
	name := st.display(df.path)
	stats := s.stats()
	s.opened(name)
	r, err := st.openReader(ctx, df.path, df.size, nil, s.cfg.stats)
	if err != nil {
		return nil, fmt.Errorf("parquetio: opening %s: %w", name, err)
	}
	defer r.Close()
	meta := &fileMeta{file: df}
	if br, ok := r.(*blobReader); ok {
		if meta.tail, err = br.footer(); err != nil {
			return nil, fmt.Errorf("parquetio: reading footer of %s: %w", name, err)
		}
	}
	f, err := openFile(r, df.size, !st.local())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	fs := f.Schema()
	if meta.fit, err = s.rec.fit(fs, df.parts); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}

	partKeys := map[string]bool{}
	for _, p := range df.parts {
		partKeys[p.key] = true
	}
	var filterPaths [][]string
	for _, fl := range s.cfg.filters {
		leaf, ok := fs.Lookup(fl.path...)
		if !ok {
			if len(fl.path) == 1 && partKeys[fl.path[0]] {
				continue // decided by partition pruning
			}
			return nil, fmt.Errorf("%s: %w: filter %s: no such column or partition key", name, ErrConfig, fl)
		}
		bf, err := fl.bind(leaf)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %v", name, ErrConfig, err)
		}
		meta.bound = append(meta.bound, bf)
		filterPaths = append(filterPaths, fl.path)
	}
	if len(filterPaths) > 0 {
		meta.proj = parquet.NewSchema(fs.Name(), project(fs, filterPaths))
	}
	seen := map[int]bool{}
	for _, p := range s.rec.schema.Columns() {
		if leaf, ok := fs.Lookup(p...); ok && !seen[leaf.ColumnIndex] {
			seen[leaf.ColumnIndex] = true
			meta.cols = append(meta.cols, leaf.ColumnIndex)
		}
	}
	for _, bf := range meta.bound {
		if !seen[bf.leaf.ColumnIndex] {
			seen[bf.leaf.ColumnIndex] = true
			meta.cols = append(meta.cols, bf.leaf.ColumnIndex)
		}
	}
	var out []stages.Split
	md := f.Metadata()
	for i, rg := range f.RowGroups() {
		n := rg.NumRows()
		stats.RowGroups.Add(1)
		if n == 0 {
			continue
		}
		desc := fmt.Sprintf("%s row group %d", name, i)
		if err := meta.fit.checkNulls(rg); err != nil {
			return nil, fmt.Errorf("%s: %w", desc, err)
		}
		if err := meta.fit.checkDeltas(&md.RowGroups[i]); err != nil {
			return nil, fmt.Errorf("%s: %w", desc, err)
		}
		v := all
		for _, bf := range meta.bound {
			switch bf.chunkVerdict(rg.ColumnChunks()[bf.leaf.ColumnIndex], n) {
			case none:
				v = none
			case some:
				if v == all {
					v = some
				}
			}
			if v == none {
				break
			}
		}
		if v == none {
			stats.RowGroupsSkipped.Add(1)
			continue
		}
		d := &splitData{meta: meta, rowGroup: i, filter: v == some}
		rows := n
		if v == some {
			ranges, err := s.pageRanges(r, rg, meta.bound)
			if err != nil {
				return nil, fmt.Errorf("parquetio: %s: reading page index: %w", desc, err)
			}
			if ranges != nil {
				kept := int64(0)
				for _, rr := range ranges {
					kept += rr.end - rr.start
				}
				if kept == 0 {
					stats.RowGroupsSkipped.Add(1)
					continue
				}
				if kept < n {
					stats.RowsSkipped.Add(n - kept)
					d.ranges, rows = ranges, kept
				}
			}
		}
		var bytes int64
		for _, c := range meta.cols {
			bytes += md.RowGroups[i].Columns[c].MetaData.TotalUncompressedSize
		}
		bytes = bytes * rows / n
		bytes = max(bytes, rows*int64(s.rec.typ.Size()))
		sp := stages.Split{Records: rows, Bytes: bytes, Desc: desc, Data: d}
		if s.cfg.orderBy != "" {
			if sp.Order, err = leastTime(md, i, s.cfg.orderBy); err != nil {
				return nil, fmt.Errorf("parquetio: %s: ordering splits: %w", desc, err)
			}
		}
		out = append(out, sp)
	}
	return out, nil
}

// pageRanges returns the rows of a row group that the page indexes of the
// filtered columns leave in, or nil when there is no page index.
func (s *FileSource[T]) pageRanges(r io.ReaderAt, rg parquet.RowGroup, bound []*boundFilter) (out []rowRange, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: parquet-go panicked: %v", ErrCorrupt, p)
		}
	}()
	n := rg.NumRows()
	for _, bf := range bound {
		cc, ok := rg.ColumnChunks()[bf.leaf.ColumnIndex].(*parquet.FileColumnChunk)
		if !ok {
			continue
		}
		ci, err := cc.ColumnIndexFrom(r)
		if err != nil || ci == nil {
			continue
		}
		oi, err := cc.OffsetIndexFrom(r)
		if err != nil || oi == nil || oi.NumPages() != ci.NumPages() {
			continue
		}
		var keep []rowRange
		for p := range ci.NumPages() {
			if !bf.pageMayMatch(ci, p) {
				continue
			}
			start, end := oi.FirstRowIndex(p), n
			if p+1 < oi.NumPages() {
				end = oi.FirstRowIndex(p + 1)
			}
			if k := len(keep); k > 0 && keep[k-1].end == start {
				keep[k-1].end = end
			} else {
				keep = append(keep, rowRange{start, end})
			}
		}
		if out == nil {
			out = keep
			if out == nil {
				out = []rowRange{}
			}
		} else {
			out = intersect(out, keep)
		}
	}
	return out, nil
}

func intersect(a, b []rowRange) []rowRange {
	out := []rowRange{}
	for i, j := 0, 0; i < len(a) && j < len(b); {
		lo, hi := max(a[i].start, b[j].start), min(a[i].end, b[j].end)
		if lo < hi {
			out = append(out, rowRange{lo, hi})
		}
		if a[i].end < b[j].end {
			i++
		} else {
			j++
		}
	}
	return out
}

// project returns the part of a group that holds the given leaf paths.
func project(node parquet.Node, paths [][]string) parquet.Node {
	g := parquet.Group{}
	for _, f := range node.Fields() {
		var sub [][]string
		leaf := false
		for _, p := range paths {
			if p[0] == f.Name() {
				if len(p) == 1 {
					leaf = true
				} else {
					sub = append(sub, p[1:])
				}
			}
		}
		switch {
		case leaf:
			g[f.Name()] = f
		case len(sub) > 0:
			var child parquet.Node = project(f, sub)
			if f.Optional() {
				child = parquet.Optional(child)
			}
			g[f.Name()] = child
		}
	}
	return g
}

// Open implements stages.Source.
func (s *FileSource[T]) Open(ctx context.Context, _ stages.Instance, sp stages.Split) (stages.Reader[T], error) {
	d, ok := sp.Data.(*splitData)
	if !ok {
		return nil, fmt.Errorf("parquetio: split %s is not a parquetio split", sp.Desc)
	}
	loc, err := s.location(ctx)
	if err != nil {
		return nil, err
	}
	meta := d.meta
	name := loc.st.display(meta.file.path)
	s.opened(name)
	r, err := loc.st.openReader(ctx, meta.file.path, meta.file.size, meta.tail, s.cfg.stats)
	if err != nil {
		return nil, fmt.Errorf("parquetio: opening %s: %w", sp.Desc, err)
	}
	rd := &reader[T]{src: s, desc: sp.Desc, r: r, d: d}
	if err := rd.open(!loc.st.local()); err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("%s: %w", sp.Desc, err)
	}
	return rd, nil
}

// position is where a reader is: the next row of a row group of a file.
type position struct {
	File     string `json:"file"`
	RowGroup int    `json:"row_group"`
	Row      int64  `json:"row"`
}

// OpenAt implements stages.Seeker: the split opens at the row a reader's
// Position returned, skipping whole pages before it where the file has an
// offset index.
func (s *FileSource[T]) OpenAt(ctx context.Context, inst stages.Instance, sp stages.Split, pos []byte) (stages.Reader[T], error) {
	var p position
	if err := json.Unmarshal(pos, &p); err != nil {
		return nil, fmt.Errorf("parquetio: opening %s at %q: %w", sp.Desc, pos, err)
	}
	d, ok := sp.Data.(*splitData)
	if !ok {
		return nil, fmt.Errorf("parquetio: split %s is not a parquetio split", sp.Desc)
	}
	if p.File != d.meta.file.path || p.RowGroup != d.rowGroup {
		return nil, fmt.Errorf("parquetio: opening %s at a position in %s row group %d: another split", sp.Desc, p.File, p.RowGroup)
	}
	r, err := s.Open(ctx, inst, sp)
	if err != nil {
		return nil, err
	}
	rd := r.(*reader[T])
	if p.Row < 0 || p.Row > rd.n {
		_ = rd.Close()
		return nil, fmt.Errorf("parquetio: opening %s at row %d: the row group has %d rows", sp.Desc, p.Row, rd.n)
	}
	for len(rd.ranges) > 0 && rd.ranges[0].end <= p.Row {
		rd.ranges = rd.ranges[1:]
	}
	if len(rd.ranges) > 0 && rd.ranges[0].start < p.Row {
		rd.ranges[0].start = p.Row
	}
	return rd, nil
}

// Position implements stages.Positioner: the next row to read.
func (rd *reader[T]) Position() ([]byte, error) {
	row := rd.n
	if len(rd.ranges) > 0 {
		row = rd.ranges[0].start
	}
	return json.Marshal(position{File: rd.d.meta.file.path, RowGroup: rd.d.rowGroup, Row: row})
}

// reader reads one split.
type reader[T any] struct {
	src  *FileSource[T]
	desc string
	r    readerAt
	d    *splitData

	rows   *parquet.GenericReader[T] // the general path
	direct *directReader             // or the direct one
	side   *parquet.Reader           // the filter columns, when filtering
	sideIx []int                     // each bound filter's column in side's rows
	buf    []parquet.Row

	ranges []rowRange
	pos    int64 // next row to read, in the row group
	n      int64 // rows in the row group
}

func (rd *reader[T]) open(blob bool) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: parquet-go panicked: %v", ErrCorrupt, p)
		}
	}()
	meta := rd.d.meta
	f, err := openFile(rd.r, meta.file.size, blob)
	if err != nil {
		return err
	}
	rgs := f.RowGroups()
	if rd.d.rowGroup >= len(rgs) {
		return fmt.Errorf("%w: the file has %d row groups now", ErrCorrupt, len(rgs))
	}
	rg := rgs[rd.d.rowGroup]
	rd.n = rg.NumRows()
	if br, ok := rd.r.(*blobReader); ok {
		md := f.Metadata().RowGroups[rd.d.rowGroup]
		var plan []byteRange
		for _, c := range meta.cols {
			cm := md.Columns[c].MetaData
			off := cm.DataPageOffset
			if cm.DictionaryPageOffset > 0 && cm.DictionaryPageOffset < off {
				off = cm.DictionaryPageOffset
			}
			plan = append(plan, byteRange{off: off, end: off + cm.TotalCompressedSize})
		}
		br.plan(plan)
	}
	// A copy: Read consumes it, and the split may be opened again (a
	// retry, a recovery).
	rd.ranges = slices.Clone(rd.d.ranges)
	if rd.ranges == nil {
		rd.ranges = []rowRange{{0, rd.n}}
	} else {
		// Load the offset indexes so that seeking skips whole pages.
		for _, c := range meta.cols {
			if cc, ok := rg.ColumnChunks()[c].(*parquet.FileColumnChunk); ok {
				_, _ = cc.OffsetIndexFrom(rd.r)
			}
		}
	}
	// The direct path's plan comes from the file as opened now: its
	// columns are found by index.
	plan, err := rd.src.rec.plan(f.Schema(), meta.fit)
	switch {
	case err != nil:
		return err
	case plan != nil:
		rd.direct = newDirectReader(rg, plan)
	case meta.fit.direct:
		return fmt.Errorf("%w: the file needs a conversion and no longer allows the direct read path", ErrSchema)
	default:
		rd.rows = parquet.NewGenericRowGroupReader[T](rg)
	}
	if rd.d.filter {
		rd.side = parquet.NewRowGroupReader(rg, meta.proj)
		for _, bf := range meta.bound {
			leaf, _ := meta.proj.Lookup(bf.path...)
			rd.sideIx = append(rd.sideIx, leaf.ColumnIndex)
		}
	}
	rd.pos = 0
	return nil
}

// Read implements stages.Reader.
func (rd *reader[T]) Read(buf []T) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: %w: parquet-go panicked near row %d: %v", rd.desc, ErrCorrupt, rd.pos, p)
		}
	}()
	stats := rd.src.stats()
	for n < len(buf) {
		if len(rd.ranges) == 0 {
			return n, io.EOF
		}
		rr := &rd.ranges[0]
		if rd.pos != rr.start {
			if err := rd.seek(rr.start); err != nil {
				return n, fmt.Errorf("%s: %w: seeking to row %d: %v", rd.desc, ErrCorrupt, rr.start, err)
			}
		}
		want := int(min(int64(len(buf)-n), rr.end-rr.start))
		out := buf[n : n+want]
		k, rerr := rd.readRows(out)
		if rerr != nil && rerr != io.EOF {
			if isRangeError(rerr) { // a value a conversion cannot hold
				return n, fmt.Errorf("%s: %w: reading rows from %d: %v", rd.desc, ErrSchema, rd.pos, rerr)
			}
			return n, fmt.Errorf("%s: %w: reading row %d: %v", rd.desc, ErrCorrupt, rd.pos, rerr)
		}
		if k < want && (rerr == io.EOF || k == 0) {
			return n, fmt.Errorf("%s: %w: row group ended at row %d of %d", rd.desc, ErrCorrupt, rd.pos+int64(k), rd.n)
		}
		stats.RowsRead.Add(int64(k))
		kept := out[:k]
		if rd.side != nil {
			if kept, err = rd.filter(out[:k]); err != nil {
				return n, err
			}
			stats.RowsFiltered.Add(int64(k - len(kept)))
		}
		if len(kept) > 0 {
			rd.d.meta.fit.apply(reflect.ValueOf(kept))
		}
		n += len(kept)
		rd.pos += int64(k)
		rr.start += int64(k)
		if rr.start >= rr.end {
			rd.ranges = rd.ranges[1:]
		}
	}
	if len(rd.ranges) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// readRows reads the next len(out) rows of the row group, which has them.
func (rd *reader[T]) readRows(out []T) (int, error) {
	if rd.direct == nil {
		return rd.rows.Read(out)
	}
	if err := rd.direct.read(unsafe.Pointer(unsafe.SliceData(out)), unsafe.Sizeof(out[0]), len(out)); err != nil {
		return 0, err
	}
	return len(out), nil
}

func (rd *reader[T]) seek(row int64) error {
	if rd.direct != nil {
		if err := rd.direct.seek(row); err != nil {
			return err
		}
	} else if err := rd.rows.SeekToRow(row); err != nil {
		return err
	}
	if rd.side != nil {
		if err := rd.side.SeekToRow(row); err != nil {
			return err
		}
	}
	rd.pos = row
	return nil
}

// filter reads the filter columns of the rows just read and keeps, in
// place, the records that pass every filter.
func (rd *reader[T]) filter(recs []T) ([]T, error) {
	if cap(rd.buf) < len(recs) {
		rd.buf = make([]parquet.Row, len(recs))
	}
	rows := rd.buf[:len(recs)]
	for got := 0; got < len(recs); {
		k, err := rd.side.ReadRows(rows[got:])
		got += k
		if got < len(recs) && (err != nil || k == 0) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("%s: %w: reading filter columns at row %d: %v", rd.desc, ErrCorrupt, rd.pos+int64(got), err)
		}
	}
	kept := recs[:0]
	for i := range recs {
		ok := true
		for j, bf := range rd.d.meta.bound {
			if !bf.match(valueAt(rows[i], rd.sideIx[j])) {
				ok = false
				break
			}
		}
		if ok {
			kept = append(kept, recs[i])
		}
	}
	// Drop references held by filtered-out records.
	clear(recs[len(kept):])
	return kept, nil
}

func valueAt(row parquet.Row, column int) parquet.Value {
	if column < len(row) && row[column].Column() == column {
		return row[column]
	}
	for _, v := range row {
		if v.Column() == column {
			return v
		}
	}
	return parquet.Value{}
}

// Close implements stages.Reader.
func (rd *reader[T]) Close() error {
	var errs []error
	if rd.rows != nil {
		errs = append(errs, rd.rows.Close())
	}
	if rd.direct != nil {
		errs = append(errs, rd.direct.close())
	}
	if rd.side != nil {
		errs = append(errs, rd.side.Close())
	}
	errs = append(errs, rd.r.Close())
	return errors.Join(errs...)
}

// leastTime returns the least value of a TIMESTAMP column in row group rg,
// from its statistics, in unix nanoseconds (event times' unit): the split
// order of OrderBy.
func leastTime(md *format.FileMetaData, rg int, column string) (int64, error) {
	var unit time.Duration
	for _, el := range md.Schema {
		if el.Name != column {
			continue
		}
		if ts, ok := el.LogicalType.Value.(*format.TimestampType); ok && ts.Unit.Value != nil {
			unit = ts.Unit.Value.Duration()
		}
	}
	for _, c := range md.RowGroups[rg].Columns {
		cm := c.MetaData
		if len(cm.PathInSchema) != 1 || cm.PathInSchema[0] != column {
			continue
		}
		if cm.Type != format.Int64 || unit == 0 {
			return 0, fmt.Errorf("column %q is not a TIMESTAMP", column)
		}
		v := cm.Statistics.MinValue
		if len(v) == 0 {
			v = cm.Statistics.Min
		}
		if len(v) != 8 {
			return 0, fmt.Errorf("column %q has no minimum statistic", column)
		}
		return int64(binary.LittleEndian.Uint64(v)) * int64(unit), nil
	}
	return 0, fmt.Errorf("%w: no column %q", ErrSchema, column)
}
