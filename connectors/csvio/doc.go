// Package csvio reads CSV files (RFC 4180, with encoding/csv) into records
// of a struct type.
//
// # Files and splits
//
// Read (or Source) reads the files that a path or a filepath.Match glob
// names, one split per file in lexical order; a glob skips directories and
// must match at least one file. A byte-order mark at the start of a file is
// ignored, lines may end in \n or \r\n, empty lines are skipped, and a quoted
// field may span lines (a \r\n inside one reads as \n, as encoding/csv
// does). A file with no bytes at all has no rows.
//
// # Columns and fields
//
// Each exported field of the record type reads one column: the column that
// its `csv:"name"` tag names, else the column named like the field (an exact
// match first, then case-insensitively). `csv:"-"` skips a field,
// `csv:",optional"` (or `csv:"name,optional"`) lets its column be missing
// from the header, leaving the field zero. Fields of embedded structs are
// read as the outer struct's own. Header columns that no field reads are
// ignored. With NoHeader the first row is data and the columns are the
// fields in declaration order.
//
// A field may be a string, bool, any int or uint, float32 or float64,
// time.Time (RFC 3339 unless TimeLayout says otherwise), a type that
// implements encoding.TextUnmarshaler, or a pointer to one of these for a
// nullable column: an empty value is nil. An empty value for a field that
// is not a string or a pointer is an error, never a silent zero. A record
// type that does not fit these rules is a graph-building mistake, reported
// with the line of the call to Read.
//
// # Bad files and bad rows
//
// A header that lacks a field's column (or names it twice) fails the job,
// under either policy, with an error that names the file and the columns;
// see ErrHeader. A bad row is a row with a wrong number of fields, a value
// that does not convert, or broken quoting. What happens to it is the
// policy, chosen by the function that adds the stage:
//
//   - Read (Source) fails the job with a *RowError naming the file and line:
//     "csvio: FILE:LINE: 3 fields, the header has 4" or
//     "csvio: FILE:LINE: column "age": strconv.ParseInt: parsing "x": invalid syntax".
//   - ReadOrDeadLetter sends each bad row to a dead-letter stream as a
//     stages.DeadLetter with Where "FILE:LINE", the row's text as it stands
//     in the file (up to MaxRecord bytes) and the reason, and goes on; the
//     job summary counts them as the side output of its parse stage.
//
// The line of a wrong field count is the line where the row starts; that of
// a bad value is the line where its field starts, which differs in a row
// with a quoted field that spans lines. Nothing is dropped silently.
//
// A quoted field that does not close (its quote is never matched, or the
// quote that matches it is followed by something other than a delimiter or
// the end of the line) would run on over later lines, to the end of the
// file at worst. Such a row is reported at the line where the quote opens,
// "... quoted field at byte 7 does not close before the end of the file"
// (or "closes on line N, byte M, without a delimiter after its quote"), and
// under ReadOrDeadLetter it is one dead letter holding the row up to that
// line: reading resumes on the next line, so the rows that the field
// swallowed are read as rows (finding the quote reads them a second time,
// reading them as rows a third). Without LazyQuotes, that is; with it a
// quote that never closes makes a field that runs to the end of the file,
// as in encoding/csv.
//
// A string field (or a pointer to one) takes only valid UTF-8: a value that
// is not is a bad row, `column "name": not valid UTF-8 (byte 2 of the value
// is 0xff)`, matching ErrInvalidUTF8, never passed on as it is. Fields of
// other types are not checked (a TextUnmarshaler sees the bytes as they
// are). A dead letter's Record shows each byte that is not valid UTF-8 as
// the four characters \xNN, so that dead letters can be written to any
// sink; its Where names the line that holds the bytes themselves.
package csvio
