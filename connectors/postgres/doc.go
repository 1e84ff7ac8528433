// Package postgres reads PostgreSQL tables and queries as Sluice sources,
// in parallel splits that see one snapshot, through pgx.
//
//	orders := postgres.Read[Order](p, "postgres://app@db/shop", postgres.Table("public.orders"),
//		postgres.PartitionBy("id", 8))
//	recent := postgres.Read[Order](p, conn,
//		postgres.Query("SELECT * FROM orders WHERE placed_at >= $1", since),
//		postgres.PartitionBy("placed_at", 16))
//
// Reading a table through one connection and one query leaves the job as
// slow as that connection (Spark's JDBC reader without partitionColumn).
// A source here reads in splits, each its own connection and query over a
// range of one column.
//
// # Records
//
// T is a struct whose exported fields are columns: a field reads the
// column its pg tag names (`pg:"placed_at"`), or its name in lower case;
// `pg:"-"` skips it. Only those columns are selected. Splits checks the
// result's columns once, before anything is read, from the server's
// description of the statement, and reports every problem at once, naming
// the table or query: a missing column, and a column whose type the field
// cannot hold without losing data. A field holds:
//
//	bool                 boolean
//	int16                smallint
//	int32                smallint, integer
//	int64, int           smallint, integer, bigint
//	float32              real
//	float64              real, double precision
//	string               text, varchar, char, name, enums, numeric (exactly, as text), uuid, json, jsonb, xml
//	[]byte               bytea, the text types, json, jsonb
//	time.Time            timestamptz, timestamp (in UTC), date
//	[16]byte             uuid
//	json.RawMessage      json, jsonb
//	a struct, map, slice json, jsonb (through encoding/json)
//	pgtype types and sql.Scanner implementations: whatever pgx decodes into them
//
// so numeric into an integer or a float, text into an integer, bigint into
// int32 and double precision into float32 are all errors (ErrSchema); cast
// in a Query where rounding is meant. A nullable column needs a pointer
// field (nil for NULL): a NULL into any other field fails the split with
// ErrNull, naming the column, the row's number in its split and its value
// of the partition column.
//
// # Splits
//
// PartitionBy(column, n) reads in n splits by ranges of column. The ranges
// are found in the source's snapshot: by default the n-1 values that divide
// the column's non-NULL values into n parts of equal row count
// (percentile_disc), so that a column whose values crowd into a narrow
// range (ids mostly recent, timestamps mostly today) still splits evenly by
// rows and not by the width of the range; that costs one pass over the
// query, or the table, with a sort of the column before reading, except
// that a table whose statistics count more than a million rows is sampled
// (about a million rows of whole pages, TABLESAMPLE SYSTEM; SampleRows sets
// how many), giving splits even to within the sample's error. IntBounds and
// TimeBounds instead divide given bounds into n ranges of equal width, as
// Spark does, at no cost. Every range is half-open, [lo, hi), the first has
// no lower end and also reads the rows whose column is NULL, and the last
// has no upper end: every row is read exactly once, whatever the bounds. A
// value more common than a split's share stays in one split, so there can
// be fewer than n splits. Any column with an ordering works for splits by
// count: integers, numeric, floats, dates, timestamps, text, uuid. An index
// on the column lets each split read only its range.
//
// PartitionByBlocks(n) splits a table without such a column by ranges of
// its pages (ctid ranges, which PostgreSQL 14 and later read with TID range
// scans, so each split reads only its own pages), costing nothing to find;
// the splits are as even as the rows are spread over the pages.
//
// Each split carries its size for the planner: Records is the row count
// that the ranges were found from (exact up to ties at the boundaries;
// scaled to the table's statistics from a sample), or
// the table's pg_class.reltuples divided by the splits, or -1 for a query
// read by bounds or in one split; Bytes is Records times the table's size
// per row (pg_relation_size / reltuples), at least the size of a T.
//
// # Consistency
//
// By default (OneSnapshot) every split sees one snapshot of the database,
// so that the splits together read what one query would have read when
// Splits ran, even while other sessions write: Splits opens a read-only
// REPEATABLE READ transaction, exports its snapshot (pg_export_snapshot),
// finds the ranges in it and keeps the transaction open; each split begins
// its own read-only REPEATABLE READ transaction and imports the snapshot
// (SET TRANSACTION SNAPSHOT) before its query. The coordinating
// transaction ends as soon as one run of the job (stages.Instance.Run) has
// read every split to its end, when Close is called, or when the context
// given to Splits ends (the runtime's skew sampling, a run of its own that
// reads the first records of each split, sees the same snapshot). While it
// is open it holds one connection and, like any long read, holds back
// VACUUM's horizon; a job that fails leaves it open until Close or the
// context ends. A split opened after every split was read (the job run
// again) starts a new pass with a new snapshot; a split opened after Close
// or the context ended, before every split was read, fails with
// ErrSnapshot rather than read another snapshot. Splits must reach the
// same server as the coordinator: not a pool of replicas behind one
// address. SnapshotPerSplit drops all this: each split sees the database
// as it is when that split opens.
//
// The coordinator and the splits turn off idle_in_transaction_session_timeout
// for their own sessions, since they wait in their transactions by design
// (the coordinator for the last split to open, a split while the job
// applies backpressure); a server's statement_timeout still applies to each
// split's query (options=-c%20statement_timeout%3D0 in a connection URL
// lifts it for long reads).
//
// # Connections and errors
//
// A split holds one connection while it is read, and the coordinator one
// more; application_name is sluice unless the connection string sets it.
// Errors name the table or query and the split (its WHERE clause). The
// source's Transient method tells a retry policy which errors are worth
// retrying: a lost, refused or reset connection, a server shutting down or
// starting up, too many connections, a serialization failure or a
// deadlock. A retried split is read again from its start.
package postgres
