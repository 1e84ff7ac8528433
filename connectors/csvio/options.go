package csvio

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/sluice-data/sluice/stages"
)

// Errors wrapped by this package's errors; each message also names the file
// and, for a row, the line.
var (
	// ErrConfig is wrapped by errors in options and record types.
	ErrConfig = fmt.Errorf("csvio: %w", stages.ErrConfig)
	// ErrNoFiles is wrapped when the pattern matches no file.
	ErrNoFiles = errors.New("csvio: no files match")
	// ErrHeader is wrapped when a file's header does not fit the record
	// type: a field's column is missing or appears twice.
	ErrHeader = errors.New("csvio: header does not fit the record type")
	// ErrBadRow is matched (errors.Is) by every *RowError.
	ErrBadRow = errors.New("csvio: bad row")
	// ErrInvalidUTF8 is matched (errors.Is) by the *RowError of a value
	// that is not valid UTF-8 for a string field: it is never passed on
	// changed or unchecked.
	ErrInvalidUTF8 = errors.New("csvio: invalid UTF-8")
)

// Option configures a source.
type Option interface{ apply(*config) }

type config struct {
	comma            rune
	comment          rune
	noHeader         bool
	lazyQuotes       bool
	trimLeadingSpace bool
	timeLayout       string
	stageOpts        []stages.SourceOption
	errs             []error
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// Delimiter sets the field delimiter (default ','). It must be a valid
// character other than '"', '\r' and '\n'.
func Delimiter(r rune) Option { return optionFunc(func(c *config) { c.comma = r }) }

// Comment makes lines that begin with r comments, skipped. r must be a
// valid character other than '"', '\r', '\n' and the delimiter.
func Comment(r rune) Option { return optionFunc(func(c *config) { c.comment = r }) }

// NoHeader reads files without a header row: the first row is data and the
// columns are the record type's fields in declaration order.
func NoHeader() Option { return optionFunc(func(c *config) { c.noHeader = true }) }

// LazyQuotes accepts a quote in an unquoted field and a lone quote in a
// quoted field, as csv.Reader.LazyQuotes does.
func LazyQuotes() Option { return optionFunc(func(c *config) { c.lazyQuotes = true }) }

// TrimLeadingSpace ignores white space at the start of each field, as
// csv.Reader.TrimLeadingSpace does.
func TrimLeadingSpace() Option { return optionFunc(func(c *config) { c.trimLeadingSpace = true }) }

// TimeLayout sets the layout (see time.Parse) of time.Time fields; the
// default is time.RFC3339, which also accepts fractional seconds.
func TimeLayout(layout string) Option {
	return optionFunc(func(c *config) {
		if layout == "" {
			c.errs = append(c.errs, fmt.Errorf("%w: empty TimeLayout", ErrConfig))
			return
		}
		c.timeLayout = layout
	})
}

// StageOptions passes source options (stages.Name, stages.Parallelism,
// stages.Records) to the source stage that Read or ReadOrDeadLetter adds.
func StageOptions(opts ...stages.SourceOption) Option {
	return optionFunc(func(c *config) { c.stageOpts = append(c.stageOpts, opts...) })
}

func newConfig(opts []Option) config {
	c := config{comma: ',', timeLayout: time.RFC3339}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if !validDelim(c.comma) {
		c.errs = append(c.errs, fmt.Errorf("%w: Delimiter %q", ErrConfig, c.comma))
	}
	if c.comment != 0 && (!validDelim(c.comment) || c.comment == c.comma) {
		c.errs = append(c.errs, fmt.Errorf("%w: Comment %q with Delimiter %q", ErrConfig, c.comment, c.comma))
	}
	return c
}

// validDelim is encoding/csv's rule for a delimiter or comment character.
func validDelim(r rune) bool {
	return r != 0 && r != '"' && r != '\r' && r != '\n' && utf8.ValidRune(r) && r != utf8.RuneError
}
