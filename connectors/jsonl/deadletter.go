package jsonl

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"sync"

	"github.com/sluice-data/sluice/internal/filesplits"
	"github.com/sluice-data/sluice/stages"
)

// Line is one line of a file that Lines reads.
type Line struct {
	Path   string // the file, as the pattern named it
	Number int64  // 1-based, counting blank lines too
	// Text is the line without its newline, a first line's byte-order mark,
	// and leading and trailing JSON whitespace; never empty. It shares memory
	// with other lines of its batch: copy it to change it.
	Text []byte
}

// String returns "FILE:LINE".
func (l Line) String() string { return fmt.Sprintf("%s:%d", l.Path, l.Number) }

// Lines returns a source of the lines of the files that pattern names, one
// split per file in lexical order, with the same file and line rules as
// Source: blank lines are skipped, a byte-order mark at the start of a file
// is ignored, lines end in \n or \r\n and may be of any length. It parses
// nothing, so it never fails on a line's content.
func Lines(pattern string) stages.Source[Line] { return lines(pattern) }

type lines string

func (s lines) Splits(context.Context) ([]stages.Split, error) { return listFiles(string(s)) }

func (s lines) Open(ctx context.Context, _ stages.Instance, sp stages.Split) (stages.Reader[Line], error) {
	sc, err := openLines(sp)
	if err != nil {
		return nil, err
	}
	return &lineReader{ctx: ctx, sc: sc}, nil
}

// arenaSize is the size of the blocks that a lineReader copies lines into.
const arenaSize = 64 << 10

type lineReader struct {
	ctx   context.Context
	sc    *scanner
	arena []byte
}

func (r *lineReader) Read(buf []Line) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	// The lines of earlier batches may still be in use downstream: each
	// batch copies into blocks of its own.
	r.arena = nil
	n := 0
	for n < len(buf) {
		text, err := r.sc.scan()
		if err != nil {
			return n, err
		}
		if text == nil {
			return n, io.EOF
		}
		if cap(r.arena)-len(r.arena) < len(text) {
			r.arena = make([]byte, 0, max(arenaSize, len(text)))
		}
		start := len(r.arena)
		r.arena = append(r.arena, text...)
		buf[n] = Line{Path: r.sc.path, Number: r.sc.line, Text: r.arena[start:len(r.arena):len(r.arena)]}
		n++
	}
	return n, nil
}

func (r *lineReader) Close() error { return r.sc.close() }

// Position implements stages.Positioner.
func (r *lineReader) Position() ([]byte, error) { return r.sc.position() }

// OpenAt implements stages.Seeker.
func (s lines) OpenAt(ctx context.Context, _ stages.Instance, sp stages.Split, pos []byte) (stages.Reader[Line], error) {
	sc, err := openLinesAt(sp, pos)
	if err != nil {
		return nil, err
	}
	return &lineReader{ctx: ctx, sc: sc}, nil
}

// MaxRecord is the most bytes of a bad line that its dead letter keeps:
// longer lines are cut at a character boundary and end in "…". The dead
// letter's Where names the file and line, where the whole line remains.
const MaxRecord = 1024

// ReadOrDeadLetter adds a source stage that reads the JSON lines files that
// pattern names, like Read, and a parse stage fused with it that decodes each
// line as a T. A line that does not parse (as Read decides: see the package
// documentation) goes to the returned dead-letter stream, with Where
// "FILE:LINE", Record the line (up to MaxRecord bytes, bytes that are not
// UTF-8 as \xNN) and Err the reason, from encoding/json or this package
// (`field "b" is not valid UTF-8 (byte 0xff)`); the job goes on. The dead-letter stream
// must be read (written somewhere, or counted): the plan is refused
// otherwise. The job summary counts the dead letters as the side output of
// the parse stage, named after the source ("jsonl/parse" unless opts name
// the source). A file that cannot be read still fails the job.
//
// opts configure the source stage; the parse stage runs with the source's
// parallelism.
func ReadOrDeadLetter[T any](p *stages.Pipeline, pattern string, opts ...stages.SourceOption) (stages.Stream[T], stages.Stream[stages.DeadLetter]) {
	src := stages.Read(p, Lines(pattern), append([]stages.SourceOption{stages.Name("jsonl")}, opts...)...)
	var stage string
	// Records to decode into: a T passed to json.Unmarshal escapes, and
	// instances run the function concurrently.
	scratch := sync.Pool{New: func() any { return new(T) }}
	sh := shapeOf(reflect.TypeFor[T]())
	good, dead := stages.FlatMapSide(src, func(l Line, out func(T), side func(stages.DeadLetter)) {
		v := scratch.Get().(*T)
		defer scratch.Put(v)
		var zero T
		*v = zero
		if err := decode(l.Text, v, sh); err != nil {
			side(stages.DeadLetter{Stage: stage, Where: l.String(), Record: truncate(l.Text), Err: err.Error()})
			return
		}
		out(*v)
	}, stages.Name(src.Node().Name+"/parse"))
	stage = good.Node().String()
	return good, dead
}

// truncate returns b as a dead letter's Record (filesplits.Excerpt).
func truncate(b []byte) string { return filesplits.Excerpt(b, MaxRecord) }
