package parquetio

import (
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/sluice-data/sluice/internal/commit"
	"github.com/sluice-data/sluice/stages"
)

// Errors wrapped by this package's errors; each message also names the URL,
// file and, where it applies, the row group and column.
var (
	// ErrConfig is wrapped by errors in options and URLs.
	ErrConfig = fmt.Errorf("parquetio: %w", stages.ErrConfig)
	// ErrNotFound is wrapped when the URL names nothing.
	ErrNotFound = errors.New("parquetio: not found")
	// ErrSchema is wrapped when a file's schema does not fit the record type.
	ErrSchema = errors.New("parquetio: schema mismatch")
	// ErrCorrupt is wrapped when a file cannot be decoded (truncated,
	// foreign or damaged), including panics of parquet-go fenced here.
	ErrCorrupt = errors.New("parquetio: corrupt file")
	// ErrExists is wrapped when the output exists and the mode is
	// ErrorIfExists.
	ErrExists = commit.ErrExists
	// ErrUnsafe is wrapped when a sink refuses its output path: a regular
	// file, the root, the working or home directory, or a directory of
	// files Sluice did not write (see Force).
	ErrUnsafe = commit.ErrUnsafe
	// ErrLeased is wrapped when another run is writing the output.
	ErrLeased = commit.ErrLeased
)

// Option configures both sources and sinks.
type Option interface {
	ReadOption
	WriteOption
}

// ReadOption configures a source.
type ReadOption interface{ applyRead(*readConfig) }

// WriteOption configures a sink.
type WriteOption interface{ applyWrite(*writeConfig) }

type readConfig struct {
	allowEmpty     bool
	ignoreManifest bool
	orderBy        string
	filters        []*filter
	errs           []error
	stats          *Stats
	onOpen         func(file string)
	stageOpts      []stages.SourceOption

	truncateTimes bool // TruncateTimestamps
}

type writeConfig struct {
	partCols       []string
	partFuncs      []partFunc
	codec          compress.Codec
	targetFileSize int64
	rowGroupRows   int64
	maxOpenFiles   int
	mode           Mode
	force          bool
	stats          *Stats
	stageOpts      []stages.SinkOption
	errs           []error
}

type partFunc struct {
	name string
	fn   any // func(T) string
	typ  reflect.Type
}

type readFunc func(*readConfig)

func (f readFunc) applyRead(c *readConfig) { f(c) }

type writeFunc func(*writeConfig)

func (f writeFunc) applyWrite(c *writeConfig) { f(c) }

type bothFunc struct {
	r func(*readConfig)
	w func(*writeConfig)
}

func (f bothFunc) applyRead(c *readConfig)   { f.r(c) }
func (f bothFunc) applyWrite(c *writeConfig) { f.w(c) }

// Where keeps only the records whose column compares to value with op, one
// of =, !=, <, <=, >, >= and in (value is then a slice). Several Where
// options must all hold. The column is a Parquet column name (dotted for a
// nested field) or a Hive partition key of the path (year in year=2024/).
//
// A filter prunes partitions by their key=value path segments before any
// file is opened, skips row groups whose column statistics (and pages whose
// page-index bounds) cannot match, and then filters the remaining rows
// exactly. Null values match no filter. The value's Go type must fit the
// column: integers for integer columns, floats or integers for floating
// columns, strings or []byte for byte arrays, bool, and time.Time for
// TIMESTAMP and DATE columns; against a partition key the value's type says
// how the path segment is parsed.
func Where(column, op string, value any) ReadOption {
	return readFunc(func(c *readConfig) {
		f, err := newFilter(column, op, value)
		if err != nil {
			c.errs = append(c.errs, err)
			return
		}
		c.filters = append(c.filters, f)
	})
}

// OrderBy names a TIMESTAMP column (the event time) whose least value in
// each row group orders the splits before they are dealt to source
// instances: with several files that each span the whole time range, the
// instances then read side by side in time instead of each stepping back at
// every file, which would make records late behind the watermark.
func OrderBy(column string) ReadOption {
	return readFunc(func(c *readConfig) { c.orderBy = column })
}

// OnOpen calls fn with the name of every data file the source opens, to read
// its footer while listing splits or its rows while reading. Tests use it to
// prove that pruned partitions are never opened. fn may be called from
// several goroutines at once.
func OnOpen(fn func(file string)) ReadOption {
	return readFunc(func(c *readConfig) { c.onOpen = fn })
}

// WithStats makes a source or sink count its work in s.
func WithStats(s *Stats) Option {
	return bothFunc{
		r: func(c *readConfig) { c.stats = s },
		w: func(c *writeConfig) { c.stats = s },
	}
}

// StageOptions passes options that every stage takes (stages.Name,
// stages.Parallelism) to the stage that Read or Write adds.
func StageOptions(opts ...stages.StageOption) Option {
	return bothFunc{
		r: func(c *readConfig) {
			for _, o := range opts {
				c.stageOpts = append(c.stageOpts, o)
			}
		},
		w: func(c *writeConfig) {
			for _, o := range opts {
				c.stageOpts = append(c.stageOpts, o)
			}
		},
	}
}

// PartitionBy writes each record under Hive-style column=value/ directories,
// one level per column, in the order given. Each column is a top-level
// field of the record type of kind string, bool, integer or float (or a
// pointer to one: nil goes to column=__HIVE_DEFAULT_PARTITION__). The column
// stays in the data files too, so every file is self-describing.
func PartitionBy(columns ...string) WriteOption {
	return writeFunc(func(c *writeConfig) {
		if len(columns) == 0 {
			c.errs = append(c.errs, fmt.Errorf("%w: PartitionBy needs at least one column", ErrConfig))
		}
		c.partCols = append(c.partCols, columns...)
	})
}

// PartitionByFunc writes each record under a Hive-style name=f(record)/
// directory. It nests below the directories of PartitionBy columns and of
// earlier PartitionByFunc options. An empty value goes to
// name=__HIVE_DEFAULT_PARTITION__. A reader whose record type has a field
// named name gets the value filled in from the path.
func PartitionByFunc[T any](name string, f func(T) string) WriteOption {
	return writeFunc(func(c *writeConfig) {
		if name == "" || f == nil {
			c.errs = append(c.errs, fmt.Errorf("%w: PartitionByFunc needs a name and a function", ErrConfig))
			return
		}
		c.partFuncs = append(c.partFuncs, partFunc{name: name, fn: f, typ: reflect.TypeFor[T]()})
	})
}

// Snappy compresses pages with Snappy (the default). The encoder is
// klauspost's fast Snappy-compatible mode, not parquet-go's slower "better"
// mode; any Parquet reader decodes it.
func Snappy() WriteOption {
	return writeFunc(func(c *writeConfig) { c.codec = fastSnappy{} })
}

// Zstd compresses pages with Zstandard at its default level.
func Zstd() WriteOption {
	return writeFunc(func(c *writeConfig) { c.codec = &zstd.Codec{Level: zstd.SpeedDefault} })
}

// Uncompressed writes pages without compression.
func Uncompressed() WriteOption {
	return writeFunc(func(c *writeConfig) { c.codec = &parquet.Uncompressed })
}

// Compression compresses pages with any parquet-go codec (gzip, lz4, brotli,
// parquet-go's own Snappy and Zstd codecs at other levels).
func Compression(codec compress.Codec) WriteOption {
	return writeFunc(func(c *writeConfig) {
		if codec == nil {
			c.errs = append(c.errs, fmt.Errorf("%w: Compression(nil)", ErrConfig))
			return
		}
		c.codec = codec
	})
}

// TargetFileSize starts a new file once the current one has grown to about
// bytes (checked after each batch, so files overshoot by up to a batch).
// The default is 512 MiB.
func TargetFileSize(bytes int64) WriteOption {
	return writeFunc(func(c *writeConfig) {
		if bytes <= 0 {
			c.errs = append(c.errs, fmt.Errorf("%w: TargetFileSize %d must be positive", ErrConfig, bytes))
		}
		c.targetFileSize = bytes
	})
}

// RowGroupRows caps the rows of a row group (default 131072). Row groups
// are the unit of splits and of statistics-based skipping; parquet-go's own
// default is unbounded, one row group per file.
func RowGroupRows(n int64) WriteOption {
	return writeFunc(func(c *writeConfig) {
		if n <= 0 {
			c.errs = append(c.errs, fmt.Errorf("%w: RowGroupRows %d must be positive", ErrConfig, n))
		}
		c.rowGroupRows = n
	})
}

// MaxOpenFiles caps the files one sink instance keeps open at once when
// writing partitions (default 64). Each open file buffers up to a row group
// in memory; past the cap the least recently written file is closed and a
// later record of its partition starts a new file.
func MaxOpenFiles(n int) WriteOption {
	return writeFunc(func(c *writeConfig) {
		if n <= 0 {
			c.errs = append(c.errs, fmt.Errorf("%w: MaxOpenFiles %d must be positive", ErrConfig, n))
		}
		c.maxOpenFiles = n
	})
}

// Mode says what a sink does when its output already exists. A Mode is a
// WriteOption: parquetio.Write(s, url, parquetio.Overwrite).
type Mode int

const (
	// ErrorIfExists fails the job if the output path holds anything (the
	// default). The check runs when the sink opens, under the output's
	// lease.
	ErrorIfExists Mode = iota
	// Overwrite replaces the output's snapshot with the job's files in one
	// step at commit; the old snapshot's files are deleted after the job
	// has committed. Files Sluice did not write are never deleted: a
	// directory holding such files and no manifest is refused unless
	// Force is given.
	Overwrite
	// Append adds the job's files to the snapshot.
	Append
	// OverwritePartitions replaces only the partition directories the job
	// writes files into, and keeps the others (Spark's
	// partitionOverwriteMode=dynamic): a daily job rewriting day=2024-01-01
	// leaves the other days as they were.
	OverwritePartitions
)

func (m Mode) applyWrite(c *writeConfig) { c.mode = m }

// String names the mode.
func (m Mode) String() string {
	if m < ErrorIfExists || m > OverwritePartitions {
		return fmt.Sprintf("Mode(%d)", int(m))
	}
	return m.commitMode().String()
}

// AllowEmpty lets a source read a directory that holds no data files (and
// no Sluice manifest) as empty; without it that is an ErrNotFound error,
// since a wrong path is the likelier cause. A directory whose manifest
// lists no files is an empty snapshot and is always read.
func AllowEmpty() ReadOption { return readFunc(func(c *readConfig) { c.allowEmpty = true }) }

// IgnoreManifest reads every data file below the URL, as readers that do
// not know Sluice's manifest do, instead of the files the output's
// _SUCCESS manifest lists. It is for inspecting an output, not for
// reading its snapshot.
func IgnoreManifest() ReadOption { return readFunc(func(c *readConfig) { c.ignoreManifest = true }) }

// Force lets a sink write where its safety rails refuse to: into the
// working or home directory (or one holding them), or into a directory
// holding files Sluice did not write and no manifest. Even forced, a sink
// never deletes a file Sluice did not write, and never replaces a regular
// file or the root directory.
func Force() WriteOption { return writeFunc(func(c *writeConfig) { c.force = true }) }

// Stats counts what a source or sink did. Pass one with WithStats; read it
// after the job. Fields are updated atomically and may be read at any time.
type Stats struct {
	// Listing.
	FilesListed      atomic.Int64 // data files found under the URL
	PartitionsPruned atomic.Int64 // partition directories pruned by filters: never listed, their files never opened

	// Footers and row groups.
	FilesOpened      atomic.Int64 // opens of a data file (footer reads and split reads)
	RowGroups        atomic.Int64 // row groups in the footers of unpruned files
	RowGroupsSkipped atomic.Int64 // row groups skipped by column statistics or the page index
	RowsSkipped      atomic.Int64 // rows of surviving row groups skipped by the page index

	// Rows.
	RowsRead     atomic.Int64 // rows decoded
	RowsFiltered atomic.Int64 // decoded rows dropped by exact filtering
	Requests     atomic.Int64 // ranged GETs sent to an object store
	BytesRead    atomic.Int64 // bytes read from storage

	// Writing.
	FilesWritten   atomic.Int64 // data files closed in staging
	RowsWritten    atomic.Int64
	BytesWritten   atomic.Int64
	FilesCommitted atomic.Int64 // data files published under the output path
}

// TruncateTimestamps lets a source read timestamps into a coarser unit
// than the file's: a TIMESTAMP(NANOS) or (MICROS) column, or an INT96
// one, into an int64 field tagged timestamp(millisecond), say. Values are
// truncated toward the past (floor division: -1 µs is -1 ms). Without it
// such a column is refused when the file's schema is checked, naming the
// file and column, because it would drop digits; time.Time fields take
// every unit exactly and need no option.
func TruncateTimestamps() ReadOption {
	return readFunc(func(c *readConfig) { c.truncateTimes = true })
}
