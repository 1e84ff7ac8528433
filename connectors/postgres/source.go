package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-data/sluice/stages"
)

// Read adds a stage that reads from, a Table or a Query of the database at
// connString (a URL or keyword/value string, as pgx.ParseConfig takes), as
// records of type T, a struct whose fields are columns (see the package
// documentation). PartitionBy reads in parallel splits. The stage is named
// "postgres" unless StageOptions name it.
func Read[T any](p *stages.Pipeline, connString string, from From, opts ...Option) stages.Stream[T] {
	src := NewSource[T](connString, from, opts...)
	if err := src.Err(); err != nil {
		p.Errorf("%v", err)
	}
	return stages.Read[T](p, src, append([]stages.SourceOption{stages.Name("postgres")}, src.cfg.stageOpts...)...)
}

// Source reads a table or a query as records of type T. It implements
// stages.Source[T]: Splits checks the result's columns against T, finds
// the ranges of the partition column and exports the snapshot that the
// splits read; Open reads one range through its own connection.
type Source[T any] struct {
	from From
	conn *pgx.ConnConfig
	cfg  config
	rec  *record
	err  error
	snap snapshot
}

// splitData is a split of a Source: the rows where where holds (every row
// when it is empty).
type splitData struct {
	where string
	sql   string // the whole statement
	cols  []column
}

// NewSource returns a source reading from at connString. A configuration
// error (an option, the connection string, the record type) is returned by
// Err and by Splits.
func NewSource[T any](connString string, from From, opts ...Option) *Source[T] {
	s := &Source[T]{from: from}
	for _, o := range opts {
		if o != nil {
			o.apply(&s.cfg)
		}
	}
	errs := s.cfg.errs
	if from == nil {
		errs = append(errs, fmt.Errorf("%w: nil From: use Table or Query", ErrConfig))
	} else if t, ok := from.(table); ok && strings.TrimSpace(string(t)) == "" {
		errs = append(errs, fmt.Errorf("%w: Table with an empty name", ErrConfig))
	} else if _, ok := from.(query); ok && s.cfg.part != nil && s.cfg.part.sampleSet {
		errs = append(errs, fmt.Errorf("%w: SampleRows samples tables; a query's rows are all counted", ErrConfig))
	} else if _, ok := from.(query); ok && s.cfg.blocks > 0 {
		errs = append(errs, fmt.Errorf("%w: PartitionByBlocks splits a table's pages; a query has none: use PartitionBy", ErrConfig))
	}
	if s.cfg.blocks > 0 && s.cfg.consistency != OneSnapshot {
		errs = append(errs, fmt.Errorf("%w: PartitionByBlocks needs OneSnapshot: a row updated between the reads of two splits can move to another page", ErrConfig))
	}
	var err error
	if s.conn, err = pgx.ParseConfig(connString); err != nil {
		errs = append(errs, fmt.Errorf("%w: %w", ErrConfig, err))
	} else if _, ok := s.conn.RuntimeParams["application_name"]; !ok {
		s.conn.RuntimeParams["application_name"] = "sluice"
	}
	s.rec, err = recordOf[T]()
	errs = append(errs, err)
	if s.err = errors.Join(errs...); s.err != nil {
		s.err = fmt.Errorf("postgres: reading %v: %w", from, s.err)
	}
	return s
}

// Err reports a configuration error.
func (s *Source[T]) Err() error { return s.err }

// Close releases the exported snapshot, if the source still holds it (it
// does until every split has been read once). Splits opened later fail.
func (s *Source[T]) Close() error {
	s.snap.release(fmt.Errorf("%w: the source was closed", ErrSnapshot))
	return nil
}

// Transient reports whether err, from this source, is worth retrying: the
// connection was lost or refused (reset, closed, a server starting up or
// shutting down, too many connections), or the server gave up on a read
// that may succeed when run again (serialization failure, deadlock, a
// conflict with recovery on a standby). Errors of the data (a NULL into a
// non-pointer field, a schema mismatch) and of the configuration, and a
// cancelled context, are not. A retried split must be read again from its
// start: records read before the error were already passed on.
func (s *Source[T]) Transient(err error) bool { return transient(err) }

func transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, ErrSchema) || errors.Is(err, ErrNull) || errors.Is(err, ErrConfig) || errors.Is(err, ErrSnapshot) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40001", // serialization_failure (also a standby's conflict with recovery)
			"40P01", // deadlock_detected
			"57P01", // admin_shutdown
			"57P02", // crash_shutdown
			"57P03", // cannot_connect_now
			"53300", // too_many_connections
			"53200": // out_of_memory
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08") // connection_exception
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

func (s *Source[T]) connect(ctx context.Context) (*pgx.Conn, error) {
	c, err := pgx.ConnectConfig(ctx, s.conn.Copy())
	if err != nil {
		return nil, fmt.Errorf("postgres: %v: %w", s.from, err)
	}
	return c, nil
}

// beginSnapshot connects and exports a snapshot from a read-only REPEATABLE
// READ transaction, left open.
func (s *Source[T]) beginSnapshot(ctx context.Context) (*pgx.Conn, string, error) {
	c, err := s.connect(ctx)
	if err != nil {
		return nil, "", err
	}
	var id string
	// The coordinator is idle in its transaction by design: a server's
	// idle_in_transaction_session_timeout must not end it.
	if _, err = c.Exec(ctx, "SET idle_in_transaction_session_timeout = 0"); err == nil {
		if _, err = c.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err == nil {
			err = c.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&id)
		}
	}
	if err != nil {
		closeConn(c)
		return nil, "", fmt.Errorf("postgres: %v: exporting a snapshot (SnapshotPerSplit does without): %w", s.from, err)
	}
	return c, id, nil
}

// fromSQL is what the statements select FROM, and the arguments they take.
func (s *Source[T]) fromSQL(tableName string) (string, []any) {
	if q, ok := s.from.(query); ok {
		// A newline ends a trailing -- comment; a trailing semicolon goes.
		return "(" + strings.TrimRight(q.sql, "; \t\r\n") + "\n) AS sluice_q", q.args
	}
	return tableName, nil
}

// Splits implements stages.Source.
func (s *Source[T]) Splits(ctx context.Context) (_ []stages.Split, err error) {
	if s.err != nil {
		return nil, s.err
	}
	var c *pgx.Conn
	var snapID string
	if s.cfg.consistency == OneSnapshot {
		c, snapID, err = s.beginSnapshot(ctx)
	} else {
		c, err = s.connect(ctx)
	}
	if err != nil {
		return nil, err
	}
	held := false
	defer func() {
		if !held {
			closeConn(c)
		}
	}()
	// Bounds come back as text to be cast again: make that text exact and
	// independent of the session's styles.
	if _, err := c.Exec(ctx, "SET extra_float_digits = 3; SET DateStyle = ISO; SET IntervalStyle = postgres"); err != nil {
		return nil, fmt.Errorf("postgres: %v: %w", s.from, err)
	}
	rel, err := s.relation(ctx, c)
	if err != nil {
		return nil, err
	}
	from, args := s.fromSQL(rel.name)
	cols, err := describe(ctx, c, "SELECT * FROM "+from)
	if err != nil {
		return nil, fmt.Errorf("postgres: %v: %w", s.from, err)
	}
	if err := s.rec.fit(s.from.String(), cols); err != nil {
		return nil, err
	}
	ranges, err := s.partition(ctx, c, rel, from, args, cols)
	if err != nil {
		return nil, err
	}
	// The statement each split runs: the record's columns, then the
	// partition column when it is not one of them (to name a row in errors).
	var sel []string
	var selCols []column
	byName := map[string]column{}
	for _, col := range cols {
		byName[col.name] = col
	}
	for _, f := range s.rec.fields {
		sel = append(sel, pgx.Identifier{f.column}.Sanitize())
		selCols = append(selCols, byName[f.column])
	}
	if p := s.cfg.part; p != nil && !s.rec.has(p.column) {
		sel = append(sel, pgx.Identifier{p.column}.Sanitize())
		selCols = append(selCols, byName[p.column])
	}
	base := "SELECT " + strings.Join(sel, ", ") + " FROM " + from
	var out []stages.Split
	for i, r := range ranges {
		stmt, desc := base, s.from.String()
		if r.where != "" {
			stmt += " WHERE " + r.where
			desc += " WHERE " + r.where
		}
		bytes := int64(-1)
		if r.records >= 0 {
			bytes = r.records * rel.rowBytes(int64(s.rec.typ.Size()))
		}
		out = append(out, stages.Split{Index: i, Records: r.records, Bytes: bytes, Desc: desc,
			Data: &splitData{where: r.where, sql: stmt, cols: selCols}})
	}
	if s.cfg.consistency == OneSnapshot {
		s.snap.hold(ctx, c, snapID, len(out))
		held = true
	}
	return out, nil
}

// relation is what Splits learned of a table.
type relation struct {
	name      string  // quoted for SQL
	reltuples float64 // pg_class.reltuples: -1 when unknown
	size      int64   // pg_relation_size
	kind      string  // pg_class.relkind
	blockSize int64   // the server's block_size
	version   int     // server_version_num
}

// rowBytes estimates a record's size: the table's bytes a row, or the Go
// record's own size when that is more.
func (r relation) rowBytes(goSize int64) int64 {
	if r.reltuples > 0 {
		return max(goSize, int64(float64(r.size)/r.reltuples))
	}
	return goSize
}

func (s *Source[T]) relation(ctx context.Context, c *pgx.Conn) (relation, error) {
	t, ok := s.from.(table)
	if !ok {
		return relation{reltuples: -1}, nil
	}
	var r relation
	err := c.QueryRow(ctx, `SELECT c.oid::regclass::text, c.reltuples::float8, c.relkind::text, pg_relation_size(c.oid),
		current_setting('block_size')::int8, current_setting('server_version_num')::int
		FROM pg_class c WHERE c.oid = to_regclass($1::text)`, string(t)).Scan(&r.name, &r.reltuples, &r.kind, &r.size, &r.blockSize, &r.version)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("postgres: %v does not exist (or is not visible on the search_path)", s.from)
	}
	if err != nil {
		return r, fmt.Errorf("postgres: %v: %w", s.from, err)
	}
	if r.kind != "r" && r.kind != "m" { // views, partitioned and foreign tables: no own statistics
		r.reltuples = -1
	}
	return r, nil
}

// describe returns the columns of sql's result without running it.
func describe(ctx context.Context, c *pgx.Conn, sql string) ([]column, error) {
	sd, err := c.PgConn().Prepare(ctx, "", sql, nil)
	if err != nil {
		return nil, err
	}
	var oids []uint32
	for _, f := range sd.Fields {
		oids = append(oids, f.DataTypeOID)
	}
	names := map[uint32][2]string{}
	rows, err := c.Query(ctx, "SELECT oid::int8, format_type(oid, NULL), typcategory::text FROM pg_type WHERE oid = ANY($1::oid[])", oids)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var oid int64
		var name, cat string
		if err := rows.Scan(&oid, &name, &cat); err != nil {
			rows.Close()
			return nil, err
		}
		names[uint32(oid)] = [2]string{name, cat}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var cols []column
	for _, f := range sd.Fields {
		n := names[f.DataTypeOID]
		col := column{name: f.Name, oid: f.DataTypeOID, typeName: n[0]}
		if n[1] != "" {
			col.category = n[1][0]
		}
		if col.typeName == "" {
			col.typeName = fmt.Sprintf("type %d", f.DataTypeOID)
		}
		cols = append(cols, col)
	}
	return cols, nil
}

func (r *record) has(column string) bool {
	for _, f := range r.fields {
		if f.column == column {
			return true
		}
	}
	return false
}

// Open implements stages.Source.
func (s *Source[T]) Open(ctx context.Context, inst stages.Instance, sp stages.Split) (_ stages.Reader[T], err error) {
	d, ok := sp.Data.(*splitData)
	if !ok {
		return nil, fmt.Errorf("postgres: split %q is not one of this source's", sp.Desc)
	}
	snapID := ""
	if s.cfg.consistency == OneSnapshot {
		if snapID, err = s.snap.acquire(ctx, s.beginSnapshot); err != nil {
			return nil, fmt.Errorf("postgres: %s: %w", sp.Desc, err)
		}
	}
	c, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			closeConn(c)
		}
	}()
	if snapID != "" {
		// A split waits in its transaction while the job applies
		// backpressure: idle_in_transaction_session_timeout must not end it.
		_, err = c.Exec(ctx, "SET idle_in_transaction_session_timeout = 0")
		if err == nil {
			_, err = c.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
		}
		if err == nil {
			_, err = c.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(snapID))
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "22023" { // invalid snapshot identifier
			return nil, fmt.Errorf("%w: %s: the coordinating session that exported it has ended (terminated by the server?): %w", ErrSnapshot, sp.Desc, err)
		}
		if err != nil {
			return nil, fmt.Errorf("postgres: %s: importing the snapshot: %w", sp.Desc, err)
		}
	}
	_, args := s.fromSQL("")
	rows, err := c.Query(ctx, d.sql, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", sp.Desc, err)
	}
	fds := rows.FieldDescriptions()
	var changed []string
	for i, fd := range fds {
		if i >= len(d.cols) || fd.DataTypeOID != d.cols[i].oid {
			changed = append(changed, fd.Name)
		}
	}
	if len(changed) > 0 || len(fds) != len(d.cols) {
		rows.Close()
		return nil, fmt.Errorf("%w: %s: the result's columns changed since the splits were listed (%s)", ErrSchema, sp.Desc, strings.Join(changed, ", "))
	}
	r := &reader[T]{src: s, split: sp, run: inst.Run, conn: c, rows: rows, dec: s.rec.decoder(c.TypeMap(), fds)}
	if p := s.cfg.part; p != nil {
		for i, col := range d.cols {
			if col.name == p.column {
				r.partCol = i
			}
		}
	} else {
		r.partCol = -1
	}
	return r, nil
}

type reader[T any] struct {
	src     *Source[T]
	split   stages.Split
	run     string
	conn    *pgx.Conn
	rows    pgx.Rows
	dec     *decoder
	partCol int   // index of the partition column in a row, or -1
	row     int64 // rows read, 1-based once reading
	eof     bool
}

func (r *reader[T]) Read(buf []T) (int, error) {
	if r.eof {
		return 0, io.EOF
	}
	n := 0
	for n < len(buf) {
		if !r.rows.Next() {
			if err := r.rows.Err(); err != nil {
				return n, fmt.Errorf("postgres: %s: after row %d: %w", r.split.Desc, r.row, err)
			}
			r.eof = true
			r.src.snap.finished(r.run, r.split.Index)
			return n, io.EOF
		}
		r.row++
		var zero T
		buf[n] = zero
		raw := r.rows.RawValues()
		if err := r.dec.decode(unsafe.Pointer(&buf[n]), raw); err != nil {
			var ne nullError
			if errors.As(err, &ne) {
				err = fmt.Errorf("%w: %s: row %d%s: %v", ErrNull, r.split.Desc, r.row, r.rowKey(raw), ne)
			} else {
				err = fmt.Errorf("postgres: %s: row %d%s: %w", r.split.Desc, r.row, r.rowKey(raw), err)
			}
			return n, err
		}
		n++
	}
	return n, nil
}

// rowKey names a row by its partition column, for errors.
func (r *reader[T]) rowKey(raw [][]byte) string {
	if r.partCol < 0 {
		return ""
	}
	fd := r.rows.FieldDescriptions()[r.partCol]
	var v any
	if err := r.conn.TypeMap().Scan(fd.DataTypeOID, fd.Format, raw[r.partCol], &v); err != nil {
		return ""
	}
	return fmt.Sprintf(" (%s = %v)", fd.Name, v)
}

func (r *reader[T]) Close() error {
	if r.conn == nil {
		return nil
	}
	// Closing the connection first ends the query without reading the rest
	// of its rows, which rows.Close would do.
	closeConn(r.conn)
	r.rows.Close()
	r.conn = nil
	return nil
}

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings
// on, the default since PostgreSQL 9.1).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
