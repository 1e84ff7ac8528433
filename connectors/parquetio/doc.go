// Package parquetio reads and writes Parquet files as Sluice stages, on
// parquet-go and gocloud.dev/blob.
//
//	orders := parquetio.Read[Order](p, "s3://lake/orders?region=eu-west-1",
//		parquetio.Where("year", "=", 2024), parquetio.Where("amount", ">=", 100))
//	parquetio.Write(totals, "/data/totals", parquetio.PartitionBy("year", "month"), parquetio.Zstd())
//
// # Locations
//
// A URL is one of
//
//   - a local path: a file, or a directory read recursively;
//   - a local glob (/data/orders/year=202[34]/*.parquet): * ? and [...] in
//     any segment; a directory that matches is read recursively (there is
//     no **);
//   - a gocloud.dev/blob URL, scheme://bucket/prefix?params: s3:// (for an
//     S3-compatible server add endpoint=, use_path_style=true and region=;
//     see DESIGN §5), file:///abs/dir (through fileblob: no fsync),
//     mem://name/prefix (an in-memory bucket shared by every use of name in
//     the process), or any scheme whose driver the program imports. Globs
//     work on object stores too, except ?, which starts the parameters.
//
// Names beginning with _ or . are hidden from readers, files and
// directories alike: _SUCCESS, _temporary, _sluice, .crc files.
// Directories named key=value are Hive partitions: their values can be
// filtered on with Where before anything below them is listed, and they
// fill record fields of the same name that the files do not have. Values
// are escaped in paths as Hive does (%2F for /); a null value is
// __HIVE_DEFAULT_PARTITION__.
//
// # Reading
//
// Splits lists the files (pruning partitions by their path segments, so
// that the files of a pruned partition are never listed or opened), reads
// each footer and makes one split per row group with its exact row count
// (an upper bound when rows are filtered) and a size estimate. Row groups
// whose column statistics rule out a filter are skipped; within the others
// the page index (where the file has one) skips pages that cannot match,
// and the remaining rows are filtered exactly. Stats counts all of this.
//
// Only the record type's columns are read (parquet-go masks the others).
// Each file's schema is checked against the record type first, because
// parquet-go would otherwise read a missing column as zeros: a column the
// record requires that the file lacks (and no partition supplies), a column
// of another physical or logical type, a repeated column for a single
// field or the reverse, and nulls in a column whose field is not optional,
// are all errors that name the file (and the row group for nulls).
//
// Records whose Parquet fields are all flat and of type int32, int64,
// float32, float64, string or time.Time (a TIMESTAMP column), or pointers
// to those (optional columns, nil for null), are read on a direct path:
// each column's pages are decoded straight into the records' fields, about
// five times faster than parquet-go's row reader, which the other records
// use. Both paths give the same records.
//
// # Types read
//
// Files that DuckDB, Spark, pandas or pyarrow write often hold another
// type than the record field's tag says. Each file's schema is checked
// once against the record, and these top-level columns are converted,
// exactly:
//
//   - an INT64 TIMESTAMP of any unit (MILLIS, MICROS, NANOS) and either
//     isAdjustedToUTC flag into a time.Time (in UTC; exact for every year,
//     not only 1677-2262 as int64 nanoseconds), and into an int64 field
//     tagged with another timestamp unit: scaled to a finer unit (a value
//     past int64's range is an error naming the file, row group and
//     column), truncated toward the past to a coarser one only with the
//     TruncateTimestamps option, refused otherwise;
//   - an INT96 timestamp (Spark's and Impala's) into a time.Time, and into
//     an int64 tagged timestamp(nanosecond) (coarser units with
//     TruncateTimestamps);
//   - a DATE into a time.Time (midnight UTC) or an int32 (days since
//     1970-01-01);
//   - an integer into any integer field at least as wide and of the same
//     signedness, or an unsigned one into a wider signed field (UINT32 into
//     int64; UINT64 into int64 is refused);
//   - a DECIMAL (INT32, INT64, fixed or variable bytes) into a float64 when
//     it has at most 15 digits (the float64 nearest the decimal, which
//     gives the decimal back), and of any precision into a Decimal, an
//     exact unscaled integer and scale; more digits into a float64 are
//     refused;
//   - a FLOAT into a float64.
//
// A column the file lacks reads as nil into a pointer field, so that the
// files of a dataset whose schema grew read together; into any other field
// it is an error. Every other difference, and every conversion that could
// lose information, is an error wrapping ErrSchema that names the file and
// the column. Converted files are read on the direct path, so a record
// that reads one must have only flat fields of its types (int8 to int64,
// uint8 to uint64, float32, float64, string, time.Time, Decimal, or
// pointers to those); a nested, repeated, bool or []byte field beside a
// conversion is an error that says so. Known gaps: files whose schema root
// is REPEATED (arrow-go's default) read as all-repeated and are refused;
// DuckDB's V2 DELTA_BINARY_PACKED pages of an INTEGER or UINTEGER column
// whose values span more than an int32 are refused (ErrCorrupt), because
// parquet-go v0.32 decodes them wrong; filters (Where) bind to the file's
// column type: a DECIMAL stored as INT32 or INT64 compares exactly with
// integers and Decimal values (not floats), while a DECIMAL stored as bytes
// and an INT96 column cannot be filtered.
//
// parquet-go panics on some damaged files; every call into it is fenced,
// and a panic becomes an error wrapping ErrCorrupt that names the file and
// row group.
//
// On object stores a file is read through an io.ReaderAt adapter over
// ranged GETs: the footer is fetched once (one GET, two when it is larger
// than 64 KiB) and cached between listing and reading, and each column
// chunk of a row group is streamed by one GET, however small parquet-go's
// own reads are.
//
// # Writing and the commit protocol
//
// An output directory is a snapshot named by its manifest, _SUCCESS: a JSON
// document listing the snapshot's files with their row and byte counts
// (package internal/commit has the whole protocol). One run writes an
// output at a time:
//
//   - Open (the first instance of the run) takes the output's lease: a
//     file _sluice/lease/<epoch> created only if absent (O_EXCL-like link
//     locally, If-None-Match: * on S3), renewed every 10 s while the job
//     runs and released at its end. A second job fails at once with
//     ErrLeased, naming the run, job, process and host that hold it. The
//     lease of a run that died is taken over at once when it ran on this
//     host (its process is gone), else once it has expired (30 s); the new
//     holder then deletes what the dead run left.
//   - Each instance writes into _sluice/staging/<run>/<instance>/, inside
//     the output (so on its file system, also at the root of a mount),
//     with names ending in .inprogress that no *.parquet glob matches.
//     Files roll over at TargetFileSize and are named
//     part-<instance>-<run>-<seq>.<codec>.parquet.
//   - Prepare closes every file (footer, flush, fsync locally; the upload
//     completes on object stores).
//   - Commit, on every instance once all have prepared, publishes its
//     files under the output: a rename (and fsyncs of the directories), or
//     a server-side copy and delete. Old files are not touched.
//   - CommitJob, once every instance has committed, switches the manifest
//     to the new snapshot in one conditional write: on S3 with If-Match on
//     the manifest read when the lease was taken (If-None-Match: * if
//     there was none); locally by an atomic rename done under the output's
//     lock (flock on the _sluice directory) after checking that the run still holds
//     the lease. A run whose lease was taken over cannot publish.
//   - FinishJob, when the whole job has ended, deletes the files the new
//     snapshot no longer lists (Overwrite: all of the old; OverwritePartitions:
//     those of the partitions rewritten; Append: none), removes the run's
//     staging and releases the lease.
//   - Abort deletes an instance's staged files, and any it published in a
//     commit that failed halfway. Revert, when a later commit of the job
//     failed, puts the previous manifest back and then deletes the files
//     the instance published: the old snapshot is whole again.
//
// Readers: Sluice's readers read a directory with a manifest as exactly the
// files it lists, also when pointed at a partition directory below it
// (out/day=2024-01-01/); a listed file that is missing is an error. Readers
// that ignore manifests (DuckDB's read_parquet('out/**/*.parquet'), Spark)
// never see staged files; while a commit is in flight, and between a crash
// in it and the next run on the output, they can see new files beside old
// ones; once a job has finished or failed they see the old snapshot or the
// new one whole. A complete snapshot is what _SUCCESS lists.
//
// Safety rails: a sink refuses an output path that is a regular file or
// the root directory, and, unless Force is given, the working or home
// directory (or one holding them), and in Overwrite modes a directory that
// holds files Sluice did not write and no manifest (ErrUnsafe). Files
// Sluice did not write are never deleted.
//
// What the protocol cannot give on plain directories: a reader that
// ignores the manifest can see a mix during a commit (a rename per file is
// the most that is atomic), and a reader that is reading the old snapshot
// when a commit finishes can see its files deleted. On object stores a copy
// is limited to 5 GiB by S3, far above the default TargetFileSize of 512
// MiB.
//
// PartitionBy keeps the partition columns in the data files too (unlike
// Spark), so every file stands alone; readers fill record fields from the
// path only when the file lacks the column. Each open file buffers up to a
// row group (RowGroupRows, default 128 Ki rows) in memory; MaxOpenFiles
// bounds how many partitions an instance writes at once.
package parquetio
