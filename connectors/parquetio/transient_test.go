package parquetio

import (
	"context"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
)

// statusError is an HTTP response error as the AWS SDK's: a status code.
type statusError int

func (e statusError) Error() string {
	return fmt.Sprintf("https response error StatusCode: %d", int(e))
}
func (e statusError) HTTPStatusCode() int { return int(e) }

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// TestTransient: on an object store, network failures, throttling and
// server errors are transient, whether wrapped or only in a parquet-go
// error's text; a damaged file, a missing or denied object and anything of
// a local file system are not.
func TestTransient(t *testing.T) {
	ctx := context.Background()
	blob := Source[struct{ A int64 }]("mem://transient/data")
	if _, err := blob.location(ctx); err != nil {
		t.Fatal(err)
	}
	local := Source[struct{ A int64 }](t.TempDir())
	if _, err := local.location(ctx); err != nil {
		t.Fatal(err)
	}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	for _, tc := range []struct {
		err         error
		blob, local bool
	}{
		{fmt.Errorf("parquetio: opening f: %w", statusError(503)), true, false},
		{fmt.Errorf("parquetio: opening f: %w", statusError(429)), true, false},
		{fmt.Errorf("parquetio: opening f: %w", statusError(403)), false, false},
		{fmt.Errorf("parquetio: opening f: %w", statusError(404)), false, false},
		{fmt.Errorf("reading k at 4: %w", reset), true, false},
		{fmt.Errorf("reading k at 4: %w", timeoutError{}), true, false},
		{fmt.Errorf("f: %w: reading row 12: reading k at 4: %v", ErrCorrupt, reset), true, false},
		{fmt.Errorf("f: %w: reading row 12: unexpected EOF", ErrCorrupt), false, false},
		{fmt.Errorf("f: %w", io.ErrUnexpectedEOF), false, false},
		{fmt.Errorf("%w: bad option", ErrConfig), false, false},
		{fmt.Errorf("reading: %w", context.Canceled), false, false},
	} {
		if got := blob.Transient(tc.err); got != tc.blob {
			t.Errorf("object store: Transient(%v) = %v, want %v", tc.err, got, tc.blob)
		}
		if got := local.Transient(tc.err); got != tc.local {
			t.Errorf("local: Transient(%v) = %v, want %v", tc.err, got, tc.local)
		}
	}
}
