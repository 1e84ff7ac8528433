package nats

import (
	"errors"
	"fmt"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
)

// Defaults of the options.
const (
	// DefaultFetchWait is how long a source's Read waits for a message
	// before it returns stages.ErrNoData.
	DefaultFetchWait = 50 * time.Millisecond
	// DefaultAckWait is how long the server waits for a durable consumer's
	// acknowledgement before it delivers a message again.
	DefaultAckWait = 30 * time.Second
	// DefaultMaxAckPending bounds the messages a durable consumer hands out
	// without acknowledgement.
	DefaultMaxAckPending = 1 << 16
	// DefaultMaxPending bounds a sink writer's publishes awaiting their
	// acknowledgement; a Write past it waits.
	DefaultMaxPending = 4096
	// DefaultAckTimeout is how long a sink waits for a publish's
	// acknowledgement before the publish fails.
	DefaultAckTimeout = 30 * time.Second
	// DefaultRequestTimeout bounds JetStream API requests (stream and
	// consumer information, consumer creation) and connection flushes.
	DefaultRequestTimeout = 10 * time.Second
)

// SourceOption configures a Source.
type SourceOption interface{ applySource(*sourceConfig) }

// SinkOption configures a Sink.
type SinkOption interface{ applySink(*sinkConfig) }

// Option configures both sources and sinks.
type Option interface {
	SourceOption
	SinkOption
}

type sourceOption func(*sourceConfig)

func (f sourceOption) applySource(c *sourceConfig) { f(c) }

type sinkOption func(*sinkConfig)

func (f sinkOption) applySink(c *sinkConfig) { f(c) }

type commonOption func(*common)

func (f commonOption) applySource(c *sourceConfig) { f(&c.common) }
func (f commonOption) applySink(c *sinkConfig)     { f(&c.common) }

// common holds what sources and sinks share.
type common struct {
	conn           []natsgo.Option
	requestTimeout time.Duration
	errs           []error
}

// ConnOptions passes options (credentials, TLS, reconnect policy) to
// nats.Connect.
func ConnOptions(opts ...natsgo.Option) Option {
	return commonOption(func(c *common) { c.conn = append(c.conn, opts...) })
}

// RequestTimeout bounds each JetStream API request and connection flush
// (DefaultRequestTimeout).
func RequestTimeout(d time.Duration) Option {
	return commonOption(func(c *common) {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("nats: RequestTimeout(%v): must be positive", d))
		}
		c.requestTimeout = d
	})
}

type sourceConfig struct {
	common
	subjects      []string
	partitions    []string
	durable       string
	startSeq      uint64
	startTime     time.Time
	untilEmpty    bool
	stopAfter     int64
	fetchWait     time.Duration
	ackWait       time.Duration
	maxAckPending int
	decode        any // func(Message) (T, error)
}

func defaultSourceConfig() sourceConfig {
	return sourceConfig{common: common{requestTimeout: DefaultRequestTimeout}, fetchWait: DefaultFetchWait,
		ackWait: DefaultAckWait, maxAckPending: DefaultMaxAckPending}
}

// Subjects reads only the messages whose subjects match the filters
// (wildcards allowed), in one split.
func Subjects(filters ...string) SourceOption {
	return sourceOption(func(c *sourceConfig) { c.subjects = append(c.subjects, filters...) })
}

// Partitions makes one split per subject filter, each read by its own
// consumer, so that parallel instances share the stream. The filters should
// not overlap: a message that matches two is read twice.
func Partitions(filters ...string) SourceOption {
	return sourceOption(func(c *sourceConfig) { c.partitions = append(c.partitions, filters...) })
}

// Durable reads through durable consumers that acknowledge each message
// (see the package documentation): the consumer is named name, or
// name-<i> for partition i when there are several partitions.
func Durable(name string) SourceOption {
	return sourceOption(func(c *sourceConfig) { c.durable = name })
}

// StartSeq starts reading at stream sequence seq (1 is the first).
func StartSeq(seq uint64) SourceOption {
	return sourceOption(func(c *sourceConfig) {
		if seq == 0 {
			c.errs = append(c.errs, errors.New("nats: StartSeq(0): sequences start at 1"))
		}
		c.startSeq = seq
	})
}

// StartTime starts reading at the first message stored at or after t.
func StartTime(t time.Time) SourceOption {
	return sourceOption(func(c *sourceConfig) {
		if t.IsZero() {
			c.errs = append(c.errs, errors.New("nats: StartTime: zero time"))
		}
		c.startTime = t
	})
}

// UntilEmpty bounds each split: it ends (io.EOF) once it has read the
// stream up to its last sequence at the time the split was opened, or when
// its consumer has nothing left to deliver.
func UntilEmpty() SourceOption {
	return sourceOption(func(c *sourceConfig) { c.untilEmpty = true })
}

// StopAfter bounds each split to n records; with UntilEmpty, whichever
// comes first ends the split.
func StopAfter(n int64) SourceOption {
	return sourceOption(func(c *sourceConfig) {
		if n <= 0 {
			c.errs = append(c.errs, fmt.Errorf("nats: StopAfter(%d): must be positive", n))
		}
		c.stopAfter = n
	})
}

// FetchWait is how long Read waits for a message before it returns
// stages.ErrNoData (DefaultFetchWait). Keep it short: the runtime polls.
func FetchWait(d time.Duration) SourceOption {
	return sourceOption(func(c *sourceConfig) {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("nats: FetchWait(%v): must be positive", d))
		}
		c.fetchWait = d
	})
}

// AckWait is how long the server waits for a durable consumer's
// acknowledgement before it delivers the message again (DefaultAckWait).
func AckWait(d time.Duration) SourceOption {
	return sourceOption(func(c *sourceConfig) {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("nats: AckWait(%v): must be positive", d))
		}
		c.ackWait = d
	})
}

// MaxAckPending bounds the unacknowledged messages of a durable consumer
// (DefaultMaxAckPending). Read asks for at most half of it at once.
func MaxAckPending(n int) SourceOption {
	return sourceOption(func(c *sourceConfig) {
		if n < 2 {
			c.errs = append(c.errs, fmt.Errorf("nats: MaxAckPending(%d): must be at least 2", n))
		}
		c.maxAckPending = n
	})
}

// Message is a message as Decode's function sees it.
type Message struct {
	Stream  string
	Subject string
	// Sequence is the message's stream sequence.
	Sequence uint64
	// Time is when the stream stored the message.
	Time   time.Time
	Header natsgo.Header
	// Data is the payload; it is not reused after the function returns.
	Data []byte
}

// Decode decodes each message with f instead of encoding/json. T must be
// the source's record type: another panics when the source is built.
func Decode[T any](f func(Message) (T, error)) SourceOption {
	return sourceOption(func(c *sourceConfig) {
		if f == nil {
			c.errs = append(c.errs, errors.New("nats: Decode(nil)"))
			return
		}
		c.decode = f
	})
}

func (c *sourceConfig) validate(url, stream string) error {
	errs := append([]error(nil), c.errs...)
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("nats: "+format, args...)) }
	if url == "" {
		bad("no server URL")
	}
	if stream == "" {
		bad("no stream name")
	}
	if len(c.subjects) > 0 && len(c.partitions) > 0 {
		bad("Subjects and Partitions both given (give the filters of each partition to Partitions)")
	}
	for _, f := range append(append([]string(nil), c.subjects...), c.partitions...) {
		if f == "" || strings.ContainsAny(f, " \t\r\n") {
			bad("subject filter %q is not valid", f)
		}
	}
	if c.startSeq > 0 && !c.startTime.IsZero() {
		bad("StartSeq and StartTime both given")
	}
	if c.durable != "" && strings.ContainsAny(c.durable, ".*> \t\r\n/\\") {
		bad("durable name %q may not hold '.', '*', '>', '/', '\\' or white space", c.durable)
	}
	return errors.Join(errs...)
}

type sinkConfig struct {
	common
	subjectOf  any // func(T) string
	msgID      any // func(T) string
	encode     any // func(T) ([]byte, error)
	maxPending int
	ackTimeout time.Duration
	once       bool
}

func defaultSinkConfig() sinkConfig {
	return sinkConfig{common: common{requestTimeout: DefaultRequestTimeout}, maxPending: DefaultMaxPending,
		ackTimeout: DefaultAckTimeout}
}

// SubjectOf publishes each record to the subject f returns instead of the
// sink's fixed subject. T must be the sink's record type: another panics
// when the sink is built.
func SubjectOf[T any](f func(T) string) SinkOption {
	return sinkOption(func(c *sinkConfig) {
		if f == nil {
			c.errs = append(c.errs, errors.New("nats: SubjectOf(nil)"))
			return
		}
		c.subjectOf = f
	})
}

// MsgID sets each message's Nats-Msg-Id header to f(record), so that
// JetStream drops a message it has seen within the stream's duplicate
// window; an empty ID sets no header. IDs must be unique per record and the
// same across replays (derive them from the record, not from a counter or a
// clock). T must be the sink's record type: another panics when the sink is
// built.
func MsgID[T any](f func(T) string) SinkOption {
	return sinkOption(func(c *sinkConfig) {
		if f == nil {
			c.errs = append(c.errs, errors.New("nats: MsgID(nil)"))
			return
		}
		c.msgID = f
	})
}

// ExactlyOnce makes the sink publish each record exactly once in a job
// that checkpoints, across recoveries, stops and restores: a writer holds
// what it is given until the next checkpoint, which records it; when that
// checkpoint completes the writer publishes it, each message with a
// Nats-Msg-Id of the run, the checkpoint, the instance and its place, so
// that a restore that publishes a checkpoint's messages again (their
// publication may not have been acknowledged before a failure) is
// de-duplicated by JetStream. What comes after the last checkpoint is
// published when the job commits. See the package documentation for the
// duplicate window. Not with MsgID.
func ExactlyOnce() SinkOption { return sinkOption(func(c *sinkConfig) { c.once = true }) }

// Encode encodes each record with f instead of encoding/json. T must be the
// sink's record type: another panics when the sink is built.
func Encode[T any](f func(T) ([]byte, error)) SinkOption {
	return sinkOption(func(c *sinkConfig) {
		if f == nil {
			c.errs = append(c.errs, errors.New("nats: Encode(nil)"))
			return
		}
		c.encode = f
	})
}

// MaxPending bounds a writer's publishes awaiting acknowledgement
// (DefaultMaxPending); a Write past it waits for acknowledgements.
func MaxPending(n int) SinkOption {
	return sinkOption(func(c *sinkConfig) {
		if n < 1 {
			c.errs = append(c.errs, fmt.Errorf("nats: MaxPending(%d): must be positive", n))
		}
		c.maxPending = n
	})
}

// AckTimeout is how long a publish waits for its acknowledgement before it
// fails the writer (DefaultAckTimeout).
func AckTimeout(d time.Duration) SinkOption {
	return sinkOption(func(c *sinkConfig) {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("nats: AckTimeout(%v): must be positive", d))
		}
		c.ackTimeout = d
	})
}

// validSubject reports whether s can be published to: non-empty tokens
// separated by dots, no wildcards, no white space.
func validSubject(s string) bool {
	if s == "" || strings.ContainsAny(s, "*> \t\r\n") {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return false
		}
	}
	return true
}
