package csvio

import (
	"context"

	"github.com/sluice-data/sluice/stages"
)

// ReadOrDeadLetter adds a source stage that reads the CSV files that pattern
// names, like Read, but sends each bad row to the returned dead-letter
// stream instead of failing: a stages.DeadLetter with Where "FILE:LINE",
// Record the row as it stands in the file (up to MaxRecord bytes, bytes that
// are not UTF-8 as \xNN) and Err the reason ("3 fields, the header has 4",
// `column "age": strconv...`). A quoted field that does not close is one
// dead letter at the line where its quote opens, and reading resumes on the
// line after (see the package documentation).
// A header that does not fit the record type still fails the job: no row of
// that file could be read. The dead-letter stream must be read (written
// somewhere, or counted): the plan is refused otherwise.
//
// The source decodes the rows; a stage fused with it, named after the source
// ("csv/parse" unless StageOptions name the source), splits them into the
// two streams, and the job summary counts the dead letters as its side
// output. It runs with the source's parallelism.
func ReadOrDeadLetter[T any](p *stages.Pipeline, pattern string, opts ...Option) (stages.Stream[T], stages.Stream[stages.DeadLetter]) {
	src := Source[T](pattern, opts...)
	if err := src.Err(); err != nil {
		p.Errorf("%v", err)
	}
	rows := stages.Read[row[T]](p, deadLetterSource[T]{src}, src.stageOptions()...)
	var stage string
	good, dead := stages.FlatMapSide(rows, func(r row[T], out func(T), side func(stages.DeadLetter)) {
		if r.dead != nil {
			d := *r.dead
			d.Stage = stage
			side(d)
			return
		}
		out(r.v)
	}, stages.Name(rows.Node().Name+"/parse"))
	stage = good.Node().String()
	return good, dead
}

// row is a decoded row or, for a bad one, its dead letter.
type row[T any] struct {
	v    T
	dead *stages.DeadLetter
}

// deadLetterSource reads rows that the parse stage of ReadOrDeadLetter
// splits.
type deadLetterSource[T any] struct{ *FileSource[T] }

func (s deadLetterSource[T]) Open(ctx context.Context, _ stages.Instance, sp stages.Split) (stages.Reader[row[T]], error) {
	d, err := s.open(ctx, sp)
	if err != nil {
		return nil, err
	}
	return (*rowReader[T])(d), nil
}

// rowReader reads under the dead-letter policy.
type rowReader[T any] decoder[T]

func (r *rowReader[T]) Read(buf []row[T]) (int, error) {
	d := (*decoder[T])(r)
	if err := d.ctx.Err(); err != nil {
		return 0, err
	}
	for n := range buf {
		buf[n].dead = nil
		bad, start, end, err := d.decode(&buf[n].v)
		if err != nil {
			return n, err
		}
		if bad != nil {
			var zero T
			buf[n].v = zero
			buf[n].dead = &stages.DeadLetter{Where: bad.where(), Record: d.text(start, end), Err: bad.reason()}
		}
	}
	return len(buf), nil
}

func (r *rowReader[T]) Close() error { return (*decoder[T])(r).close() }
