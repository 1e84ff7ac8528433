package parquetio

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sort"
	"sync"

	"gocloud.dev/blob"
)

// blobReader is an io.ReaderAt over an object of a gocloud.dev/blob bucket,
// which offers only ranged readers. parquet-go reads the footer with a few
// small reads and each column chunk through a small buffered reader, so
// turning every ReadAt into a GET would cost one request per 4 KiB. Instead:
//
//   - the footer (the file's tail) is fetched once, while listing splits,
//     and served from memory afterwards;
//   - each planned byte range (a column chunk of the row group being read)
//     is fetched by one ranged GET that stays open and serves the chunk's
//     sequential reads, several chunks streaming side by side;
//   - other reads fetch at least minFetch bytes and keep the stream open
//     for the reads that follow.
type blobReader struct {
	ctx   context.Context
	b     *blob.Bucket
	key   string
	size  int64
	stats *Stats

	mu      sync.Mutex
	tail    []byte // the last len(tail) bytes of the object
	ranges  []byteRange
	streams []*rangeStream
	clock   uint64
}

type byteRange struct{ off, end int64 }

type rangeStream struct {
	r        *blob.Reader
	pos, end int64
	used     uint64
}

const (
	// minFetch is the least a GET outside the planned ranges asks for.
	minFetch = 64 << 10
	// maxSkip is how far a stream may be read and discarded to serve a
	// read a little ahead of it instead of opening a new GET.
	maxSkip = 64 << 10
	// maxStreams caps the GETs held open at once.
	maxStreams = 64
	// tailFetch is what the first footer read asks for.
	tailFetch = 64 << 10
)

func newBlobReader(ctx context.Context, b *blob.Bucket, key string, size int64, tail []byte, stats *Stats) *blobReader {
	return &blobReader{ctx: ctx, b: b, key: key, size: size, tail: tail, stats: stats}
}

// plan sets the byte ranges that will be read, so that each is fetched by
// one GET.
func (r *blobReader) plan(ranges []byteRange) {
	sort.Slice(ranges, func(i, j int) bool { return ranges[i].off < ranges[j].off })
	r.mu.Lock()
	r.ranges = ranges
	r.mu.Unlock()
}

// footer fetches the object's tail up to and including the whole footer, and
// returns it for caching.
func (r *blobReader) footer() ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tail != nil {
		return r.tail, nil
	}
	if r.size < 8 {
		return nil, fmt.Errorf("%w: %d bytes is too short for a parquet file", ErrCorrupt, r.size)
	}
	n := min(r.size, tailFetch)
	buf, err := r.get(r.size-n, n)
	if err != nil {
		return nil, err
	}
	footerLen := int64(binary.LittleEndian.Uint32(buf[len(buf)-8:])) + 8
	if string(buf[len(buf)-4:]) != "PAR1" || footerLen > r.size {
		// Leave it to parquet-go to say what is wrong; keep what we have.
		r.tail = buf
		return buf, nil
	}
	if footerLen > n {
		more, err := r.get(r.size-footerLen, footerLen-n)
		if err != nil {
			return nil, err
		}
		buf = append(more, buf...)
	} else {
		buf = append([]byte(nil), buf[n-footerLen:]...) // keep only the footer
	}
	r.tail = buf
	return buf, nil
}

func (r *blobReader) get(off, n int64) ([]byte, error) {
	rr, err := r.b.NewRangeReader(r.ctx, r.key, off, n, nil)
	if err != nil {
		return nil, err
	}
	defer rr.Close()
	r.count(1, 0)
	buf := make([]byte, n)
	k, err := io.ReadFull(rr, buf)
	r.count(0, k)
	if err != nil {
		return nil, err
	}
	return buf, nil
}

func (r *blobReader) count(requests, bytes int) {
	if r.stats != nil {
		r.stats.Requests.Add(int64(requests))
		r.stats.BytesRead.Add(int64(bytes))
	}
}

// ReadAt implements io.ReaderAt.
func (r *blobReader) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if off < 0 {
		return 0, fmt.Errorf("parquetio: negative offset %d", off)
	}
	n := 0
	for n < len(p) {
		o := off + int64(n)
		if o >= r.size {
			return n, io.EOF
		}
		tailStart := r.size - int64(len(r.tail))
		if o >= tailStart {
			n += copy(p[n:], r.tail[o-tailStart:])
			continue
		}
		want := min(int64(len(p)-n), tailStart-o)
		s, err := r.stream(o, want)
		if err != nil {
			return n, err
		}
		if skip := o - s.pos; skip > 0 {
			k, err := io.CopyN(io.Discard, s.r, skip)
			s.pos += k
			r.count(0, int(k))
			if err != nil {
				r.drop(s)
				return n, fmt.Errorf("reading %s at %d: %w", r.key, o, err)
			}
		}
		k := min(want, s.end-o)
		got, err := io.ReadFull(s.r, p[n:n+int(k)])
		s.pos += int64(got)
		n += got
		r.count(0, got)
		if err != nil {
			r.drop(s)
			return n, fmt.Errorf("reading %s at %d: %w", r.key, o, err)
		}
		if s.pos >= s.end {
			r.drop(s)
		}
	}
	return n, nil
}

// stream returns an open GET that can serve a read at o, opening one if
// none can.
func (r *blobReader) stream(o, want int64) (*rangeStream, error) {
	r.clock++
	for _, s := range r.streams {
		if s.pos <= o && o-s.pos <= maxSkip && o < s.end {
			s.used = r.clock
			return s, nil
		}
	}
	end := o + max(want, minFetch)
	for _, br := range r.ranges {
		if br.off <= o && o < br.end {
			end = max(end, br.end)
			break
		}
	}
	end = min(end, r.size)
	if len(r.streams) >= maxStreams {
		lru := r.streams[0]
		for _, s := range r.streams {
			if s.used < lru.used {
				lru = s
			}
		}
		r.drop(lru)
	}
	rr, err := r.b.NewRangeReader(r.ctx, r.key, o, end-o, nil)
	if err != nil {
		return nil, fmt.Errorf("reading %s at %d: %w", r.key, o, err)
	}
	r.count(1, 0)
	s := &rangeStream{r: rr, pos: o, end: end, used: r.clock}
	r.streams = append(r.streams, s)
	return s, nil
}

func (r *blobReader) drop(s *rangeStream) {
	for i, t := range r.streams {
		if t == s {
			r.streams = append(r.streams[:i], r.streams[i+1:]...)
			break
		}
	}
	_ = s.r.Close()
}

// Close closes every open GET.
func (r *blobReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.streams {
		_ = s.r.Close()
	}
	r.streams = nil
	return nil
}
