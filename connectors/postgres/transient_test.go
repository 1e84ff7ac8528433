package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-data/sluice/connectors/postgres"
)

func TestTransient(t *testing.T) {
	src := postgres.NewSource[item]("postgres://127.0.0.1:1/x", postgres.Table("t"))
	pg := func(code string) error { return fmt.Errorf("postgres: split 1: %w", &pgconn.PgError{Code: code}) }
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{pg("40001"), true},  // serialization_failure, and a standby's conflict with recovery
		{pg("40P01"), true},  // deadlock_detected
		{pg("57P01"), true},  // admin_shutdown
		{pg("57P02"), true},  // crash_shutdown
		{pg("57P03"), true},  // cannot_connect_now
		{pg("53300"), true},  // too_many_connections
		{pg("08006"), true},  // connection_failure
		{pg("08P01"), true},  // protocol_violation
		{pg("42P01"), false}, // undefined_table
		{pg("28P01"), false}, // invalid_password
		{pg("57014"), false}, // query_canceled
		{pg("22023"), false}, // invalid_parameter_value: an unknown snapshot
		{fmt.Errorf("reading: %w", reset), true},
		{fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), true},
		{fmt.Errorf("reading: %w", syscall.EPIPE), true},
		{fmt.Errorf("a reset, but cancelled: %w", errors.Join(context.Canceled, reset)), false},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), false},
		{fmt.Errorf("x: %w", postgres.ErrNull), false},
		{fmt.Errorf("x: %w", postgres.ErrSchema), false},
		{errors.New("something else"), false},
		{nil, false},
	} {
		if got := src.Transient(c.err); got != c.want {
			t.Errorf("Transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// A server that refuses the connection (nothing listens) is worth retrying.
func TestRefusedConnectionIsTransient(t *testing.T) {
	src := postgres.NewSource[item]("postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=5", postgres.Table("t"))
	_, err := src.Splits(ctxT(t))
	if err == nil || !src.Transient(err) {
		t.Fatalf("Splits against a closed port: %v, want a transient error", err)
	}
}
