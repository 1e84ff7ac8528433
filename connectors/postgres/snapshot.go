package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// snapshot holds the coordinating transaction whose exported snapshot the
// splits import. It is held from Splits until one run of the job has read
// every split to its end (a pass), until Close, or until the context given
// to Splits ends, whichever comes first. Completions count by run
// (stages.Instance.Run): the runtime's skew sampling reads the first
// records of each split in a run of its own, and reads a small split to
// its end, before the job's run reads them all again.
//
// A split opened again after a completed pass (a job run twice from one
// source) starts a new pass with a new snapshot; a split opened after the
// snapshot was released in the middle of a pass fails with ErrSnapshot, as
// its rows would not be consistent with the others'.
type snapshot struct {
	mu     sync.Mutex
	conn   *pgx.Conn               // the coordinator, in a REPEATABLE READ transaction; nil once released
	id     string                  // pg_export_snapshot()
	splits int                     // splits in a pass
	done   map[string]map[int]bool // by run: the splits it read to their end
	stop   func() bool             // stops watching the context of the pass
	why    error                   // why the snapshot was released, while conn is nil
	gen    int                     // counts passes, so that a late context callback releases only its own
}

// errPassDone is why a snapshot was released after a completed pass.
var errPassDone = fmt.Errorf("every split was read")

// hold makes conn, in a transaction that exported id, the current pass's
// coordinator for splits splits, released when ctx ends. It releases the
// previous one.
func (s *snapshot) hold(ctx context.Context, conn *pgx.Conn, id string, splits int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(errPassDone)
	s.conn, s.id, s.splits, s.done, s.why = conn, id, splits, map[string]map[int]bool{}, nil
	s.watch(ctx, "the context given to Splits")
}

// watch releases the current pass's snapshot when ctx ends.
func (s *snapshot) watch(ctx context.Context, what string) {
	s.gen++
	gen := s.gen
	s.stop = context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.gen == gen {
			s.releaseLocked(fmt.Errorf("%w: %s ended (%v)", ErrSnapshot, what, context.Cause(ctx)))
		}
	})
}

// acquire returns the snapshot a split opening now imports. After a
// completed pass it calls begin for a new coordinator, exporting a new one.
func (s *snapshot) acquire(ctx context.Context, begin func(context.Context) (*pgx.Conn, string, error)) (string, error) {
	s.mu.Lock()
	if s.conn != nil {
		defer s.mu.Unlock()
		return s.id, nil
	}
	if s.why != errPassDone {
		defer s.mu.Unlock()
		if s.why == nil {
			return "", fmt.Errorf("%w: Splits was not called", ErrSnapshot)
		}
		return "", s.why
	}
	s.mu.Unlock()
	conn, id, err := begin(ctx)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil { // another split began the pass first: use its snapshot
		closeConn(conn)
		return s.id, nil
	}
	s.conn, s.id, s.done, s.why = conn, id, map[string]map[int]bool{}, nil
	s.watch(ctx, "the context of the split that began the pass")
	return id, nil
}

// finished records that run read split i to its end; the last split of a
// run releases the snapshot.
func (s *snapshot) finished(run string, i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return
	}
	if s.done[run] == nil {
		s.done[run] = map[int]bool{}
	}
	s.done[run][i] = true
	if len(s.done[run]) >= s.splits {
		s.releaseLocked(errPassDone)
	}
}

func (s *snapshot) release(why error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(why)
}

func (s *snapshot) releaseLocked(why error) {
	if s.conn == nil {
		return
	}
	if s.stop != nil {
		s.stop()
	}
	closeConn(s.conn)
	s.conn, s.id, s.stop, s.why = nil, "", nil, why
}

// closeConn ends conn's transaction and session; a read-only transaction
// has nothing to keep, so a failure to say goodbye is not reported.
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx) // the server rolls back an open transaction
}
