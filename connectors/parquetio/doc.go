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
// directories alike: _SUCCESS, _temporary, .sluice-staging-*, .crc files.
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
// to those (optional columns, nil for null), are read on a direct path: each column's pages are decoded straight into the records'
// fields, about five times faster than parquet-go's row reader, which the
// other records use. Both paths give the same records.
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
// Each sink instance writes its files into a staging directory that is a
// sibling of the output, hidden by its name:
//
//	<parent>/.sluice-staging-<output name>/<run>/<instance>/<partitions>/part-….parquet
//
// (for an output at a bucket's root, .sluice-staging/ at the root). The
// run is the runtime's run ID (stages.Instance.Run), shared by every
// instance of the job. Files roll over at TargetFileSize and are named
// part-<instance>-<run>-<seq>.<codec>.parquet, so that Append never
// collides with earlier runs and a run's own files are known by name. Then,
// following the sink lifecycle:
//
//   - Prepare closes every file (footer, flush, fsync on local disks; the
//     upload completes on object stores) and fsyncs the staging
//     directories;
//   - Commit, called on every instance once all have prepared, publishes
//     the instance's files: a rename on local disks (then an fsync of each
//     directory that changed), a server-side copy and a delete on object
//     stores. The first instance to commit in a process applies the mode
//     first: Overwrite deletes every file under the output that is not of
//     this run (so several processes of one run can each do it safely);
//     ErrorIfExists checks again that there is none;
//   - CommitJob (stages.JobCommitter), which the runtime calls once after
//     every instance has committed, writes _SUCCESS: a JSON manifest of the
//     run's files, found by listing the output, written in staging and then
//     renamed (or copied) into place;
//   - Abort deletes the instance's open and staged files, and any it
//     published in a commit that failed halfway;
//   - Revert (stages.Reverter), called when a later commit of the job
//     failed (another instance's, another sink's, a job-level one), deletes
//     the files the instance published, the directories that leaves empty,
//     and the _SUCCESS marker if this run wrote it.
//
// So a failed or cancelled job leaves nothing under the output path (the
// output directory is only created by Commit) and a rerun starts clean;
// in Overwrite mode, the older files deleted at the first commit stay
// deleted.
// A process that dies leaves its staging directory behind, hidden from
// readers; it can be deleted.
//
// What the per-instance Commit cannot give: the files become visible
// instance by instance, so a reader that lists the output during the commit
// (or in the moment before a failed commit is reverted) can see part of
// the run; _SUCCESS is the mark of a complete one. A file system rename or an
// object store copy per file is the most that is atomic here. On object
// stores a copy is limited to 5 GiB by S3, far above the default
// TargetFileSize of 512 MiB.
//
// PartitionBy keeps the partition columns in the data files too (unlike
// Spark), so every file stands alone; readers fill record fields from the
// path only when the file lacks the column. Each open file buffers up to a
// row group (RowGroupRows, default 128 Ki rows) in memory; MaxOpenFiles
// bounds how many partitions an instance writes at once.
package parquetio
