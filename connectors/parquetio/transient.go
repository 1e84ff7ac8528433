package parquetio

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"

	"gocloud.dev/gcerrors"
)

// Transient implements stages.TransientErrors for a source on an object
// store: a connection refused, reset or cut, a timeout, a throttled request
// (429, SlowDown) and a server error (5xx) may pass when the split is
// opened again, which the runtime does with a backoff while none of the
// split's records have gone on (a reader cannot resume mid-row-group).
// Nothing a local file system returns is transient, nor is a damaged file,
// a missing object or a denied one.
//
// Open passes the store's errors on wrapped; a read that fails inside
// parquet-go reports the cause as text only (ErrCorrupt ... %v), so for
// those the same network failures are recognised by their messages.
func (s *FileSource[T]) Transient(err error) bool {
	s.mu.Lock()
	local := s.loc == nil || s.loc.st.local()
	s.mu.Unlock()
	if local || err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	switch gcerrors.Code(err) {
	case gcerrors.ResourceExhausted, gcerrors.DeadlineExceeded:
		return true
	case gcerrors.NotFound, gcerrors.PermissionDenied, gcerrors.InvalidArgument, gcerrors.FailedPrecondition:
		return false
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) {
		c := status.HTTPStatusCode()
		return c >= 500 || c == 429 || c == 408
	}
	var api interface{ ErrorCode() string }
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "Throttling", "ThrottlingException",
			"RequestLimitExceeded", "TooManyRequestsException":
			return true
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED) {
		return true
	}
	msg := err.Error()
	for _, s := range transientText {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// transientText are the messages of network failures that parquet-go's
// errors carry only as text.
var transientText = []string{
	"connection reset by peer", "connection refused", "broken pipe", "i/o timeout",
	"use of closed network connection", "TLS handshake timeout", "server closed idle connection",
	"http2: client connection lost", "StatusCode: 500", "StatusCode: 502", "StatusCode: 503", "StatusCode: 504",
}
