package examples

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"

	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// WordCount counts the words of a text file and prints the ten most
// frequent. Its argument in names the file; without it the job counts a
// short built-in text.
//
//	sluice run wordcount --arg in=book.txt
var WordCount = stages.Register("wordcount", func(p *stages.Pipeline, args stages.Args) {
	var lines stages.Stream[string]
	if in := args.String("in", ""); in != "" {
		lines = stages.Read[string](p, textFile(in), stages.Name("lines"))
	} else {
		lines = stages.FromSlice(p, strings.Split(strings.TrimSpace(builtinText), "\n"), stages.Name("lines"))
	}
	words := stages.FlatMap(lines, splitWords, stages.Name("words"))
	counts := stages.Aggregate(stages.KeyBy(words, func(w string) string { return w }),
		window.Global(), stages.Count[string](), stages.ID("wordcount-v1"))
	printTop(counts, 10, "distinct words", "WORD", "count")
}).Describe("counts the words of a text file (in=PATH, or a built-in text) and prints the 10 most frequent")

// splitWords emits the lower-cased words of a line: runs of letters and
// digits, with inner apostrophes ("don't").
func splitWords(line string, emit func(string)) {
	for _, w := range strings.FieldsFunc(strings.ToLower(line), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
	}) {
		if w = strings.Trim(w, "'"); w != "" {
			emit(w)
		}
	}
}

// textFile is a source of the lines of one text file, read as one split.
type textFile string

// Splits implements stages.Source; it fails when the file cannot be read.
func (f textFile) Splits(context.Context) ([]stages.Split, error) {
	fi, err := os.Stat(string(f))
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory", f)
	}
	return []stages.Split{{Records: -1, Bytes: fi.Size(), Desc: string(f)}}, nil
}

// Open implements stages.Source.
func (f textFile) Open(context.Context, stages.Instance, stages.Split) (stages.Reader[string], error) {
	file, err := os.Open(string(f))
	if err != nil {
		return nil, err
	}
	s := bufio.NewScanner(file)
	s.Buffer(nil, 1<<20)
	return &lineReader{path: string(f), file: file, s: s}, nil
}

type lineReader struct {
	path string
	file *os.File
	s    *bufio.Scanner
	line int
}

func (r *lineReader) Read(buf []string) (int, error) {
	n := 0
	for n < len(buf) {
		if !r.s.Scan() {
			if err := r.s.Err(); err != nil {
				return n, fmt.Errorf("%s line %d: %w", r.path, r.line+1, err)
			}
			return n, io.EOF
		}
		r.line++
		buf[n] = r.s.Text()
		n++
	}
	return n, nil
}

func (r *lineReader) Close() error { return r.file.Close() }

// builtinText is what wordcount counts without an input file: the opening
// of Jerome K. Jerome's Three Men in a Boat (1889), in the public domain.
const builtinText = `
There were four of us—George, and William Samuel Harris, and myself, and
Montmorency. We were sitting in my room, smoking, and talking about how bad
we were—bad from a medical point of view I mean, of course.

We were all feeling seedy, and we were getting quite nervous about it.
Harris said he felt such extraordinary fits of giddiness come over him at
times, that he hardly knew what he was doing; and then George said that he
had fits of giddiness too, and hardly knew what he was doing. With me, it
was my liver that was out of order. I knew it was my liver that was out of
order, because I had just been reading a patent liver-pill circular, in
which were detailed the various symptoms by which a man could tell when his
liver was out of order. I had them all.

It is a most extraordinary thing, but I never read a patent medicine
advertisement without being impelled to the conclusion that I am suffering
from the particular disease therein dealt with in its most virulent form.
The diagnosis seems in every case to correspond exactly with all the
sensations that I have ever felt.
`
