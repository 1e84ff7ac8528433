package cli

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/membership"
	"github.com/sluice-data/sluice/metrics"
	"github.com/sluice-data/sluice/plan"
)

const nodeDoc = `Runs a node of a cluster: a daemon of this binary that joins the others by
gossip and runs the jobs submitted to it (sluice submit --to HOST:PORT).

--listen is the node's base address; the ports not given follow from its
port P: gossip P+1 (TCP and UDP), data P+2, HTTP P+3. So
  sluice node --listen 127.0.0.1:7600
gossips on 7601 and serves its API on 7603, and a second node joins it with
  sluice node --listen 127.0.0.1:7610 --join 127.0.0.1:7601

The HTTP API (for the client commands; JSON):
  GET  /v1/nodes             the members as this node sees them
  POST /v1/jobs              run a job: {"args": [JOB, flags of run...]};
                             the reply streams its output and exit status
                             (503 once the node is stopping)
  GET  /v1/jobs[/ID]         the jobs this node runs and ran
  POST /v1/jobs/ID/stop      stop it as SIGTERM stops 'run' (at a final
                             checkpoint with --checkpoints: exit 75); asked
                             again, it goes on stopping (cancel ends it)
  POST /v1/jobs/ID/cancel    cancel it
  POST /v1/jobs/ID/savepoint take a savepoint: {"name": NAME, "timeout": "1m"}
  GET  /v1/jobs/ID/stats     its statistics per stage and vertex
  POST /v1/cluster/jobs      (between nodes) a node's jobs, which it announces
  POST /v1/cluster/fence     (between nodes) this node was found dead and its
                             jobs resumed elsewhere: it exits at once
  GET  /metrics              every job's, in Prometheus's text format
  GET  /debug/pprof/         Go's profiles of the node
A job runs on the node that accepts it, in its process (placement across
nodes is not built yet); what it prints itself goes to the node's standard
output, its progress, summary and errors to the client. SIGTERM or SIGINT
stops the node's jobs as 'run' stops one, then leaves the cluster (the
others see it left, not dead); a second signal exits at once.`

// nodeFlags are the node command's flags.
type nodeFlags struct {
	listen, gossip, data, http string
	join, name, profile        string
	slots                      int
	stopTimeout                time.Duration
	spotNotice                 string
	// security (security.go)
	gossipKeyFile, tlsCert, tlsKey, tlsCA, tokenFile string
	insecure                                         bool
	devCerts                                         string
}

func (c *invocation) nodeFlagSet() (*flag.FlagSet, *nodeFlags) {
	f := &nodeFlags{}
	fs := flag.NewFlagSet(c.name+" node", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s node [flags]\n\n%s\n\n%s\n\nFlags:\n", c.name, nodeDoc, securityDoc)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.listen, "listen", "127.0.0.1:7600", "the node's base address `HOST:PORT`, from which the other ports follow")
	fs.StringVar(&f.gossip, "gossip", "", "the gossip address (memberlist, TCP and UDP; default: --listen's port + 1)")
	fs.StringVar(&f.data, "data", "", "the data address (default: --listen's port + 2)")
	fs.StringVar(&f.http, "http", "", "the HTTP API's address (default: --listen's port + 3)")
	fs.StringVar(&f.join, "join", "", "gossip addresses of nodes to join, comma-separated (none: start a cluster)")
	fs.StringVar(&f.name, "name", "", "the node's name, to which each start adds a fresh incarnation (default: the host name)")
	fs.StringVar(&f.profile, "profile", "local", "failure detection timing: "+strings.Join(membership.Profiles, ", ")+
		" (local detects a crash in about 0.4 s on one machine; ci tolerates -race on busy cores)")
	fs.IntVar(&f.slots, "slots", runtime.NumCPU(), "the task instances the node runs at once")
	fs.DurationVar(&f.stopTimeout, "stop-timeout", 30*time.Second, "at SIGTERM, how long the node's jobs have to stop before it cancels them")
	fs.StringVar(&f.spotNotice, "spot-notice", "", "poll the instance metadata `URL` for a spot interruption notice every 5 s and, "+
		"when one comes, drain and leave as at SIGTERM (AWS: http://169.254.169.254/latest/meta-data/spot/instance-action; "+
		"GCE: http://metadata.google.internal/computeMetadata/v1/instance/preempted)")
	fs.StringVar(&f.gossipKeyFile, "gossip-key-file", "", "encrypt the gossip with the keys of `FILE`: one base64 key a line (16, 24 or 32 bytes), "+
		"the first the one used to send (default: $"+envGossipKey+")")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "the node's certificate, PEM `FILE`: mutual TLS on data connections, HTTPS on the API")
	fs.StringVar(&f.tlsKey, "tls-key", "", "the key of --tls-cert, PEM `FILE`")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "the CA that signed every node's certificate, PEM `FILE`: peers are verified against it, clients trust it")
	fs.StringVar(&f.tokenFile, "token-file", "", "require every HTTP request to carry the token in `FILE` (Authorization: Bearer; default: $"+envToken+")")
	fs.BoolVar(&f.insecure, "insecure", false, "run what the security flags leave out in plaintext, unauthenticated (logged at start)")
	fs.StringVar(&f.devCerts, "dev-certs", "", "write a self-signed CA, a certificate for 127.0.0.1 and localhost, a token and a gossip key "+
		"into `DIR` for local use, print the flags that use them, and exit")
	return fs, f
}

// loopbackAddr reports whether addr (HOST:PORT) listens on a loopback
// address only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// derive returns addr, or when it is empty --listen's host with its port
// plus off.
func derive(listen, addr string, off int) (string, error) {
	if addr != "" {
		return addr, nil
	}
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("--listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port+off > 65535 {
		return "", fmt.Errorf("--listen %q: want a port from 1 to %d, for the ports that follow from it", listen, 65535-off)
	}
	return net.JoinHostPort(host, strconv.Itoa(port+off)), nil
}

// buildID identifies this binary: the SHA-256 of its executable, so that
// any two builds differ.
func buildID() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	f, err := os.Open(exe)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// node runs 'node' until ctx is done (the first SIGTERM or SIGINT).
func (c *invocation) node(ctx context.Context, args []string) int {
	fs, f := c.nodeFlagSet()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return c.flagError(fs, "node", err)
	}
	if fs.NArg() > 0 {
		c.errorf("node: unexpected argument %q", fs.Arg(0))
		return exitUsage
	}
	if f.devCerts != "" {
		return c.devCerts(f.devCerts)
	}
	var errs [3]error
	f.gossip, errs[0] = derive(f.listen, f.gossip, 1)
	f.data, errs[1] = derive(f.listen, f.data, 2)
	f.http, errs[2] = derive(f.listen, f.http, 3)
	if err := errors.Join(errs[:]...); err != nil {
		c.errorf("node: %v", err)
		return exitUsage
	}
	if f.slots < 1 {
		c.errorf("node: --slots %d: want at least 1", f.slots)
		return exitUsage
	}
	var spot *url.URL
	if f.spotNotice != "" {
		var err error
		if spot, err = url.Parse(f.spotNotice); err != nil || (spot.Scheme != "http" && spot.Scheme != "https") || spot.Host == "" {
			c.errorf("node: --spot-notice %q: want an http:// URL of the instance metadata service", f.spotNotice)
			return exitUsage
		}
	}
	sec, err := loadNodeSecurity(f.gossipKeyFile, f.tlsCert, f.tlsKey, f.tlsCA, f.tokenFile, f.insecure, os.Getenv)
	if err != nil {
		c.errorf("node: %v", err)
		return exitUsage
	}
	if len(sec.missing()) == 3 && !f.insecure {
		for _, a := range []struct{ flag, addr string }{{"--listen", f.listen}, {"--gossip", f.gossip}, {"--data", f.data}, {"--http", f.http}} {
			if !loopbackAddr(a.addr) {
				c.errorf("node: %s %s is open to other hosts, and no security flags are given: gossip, data and the HTTP API would be "+
					"plaintext and unauthenticated for them; give --gossip-key-file, --tls-cert/--tls-key/--tls-ca and --token-file "+
					"('%s node --dev-certs DIR' writes a set), or --insecure to mean it", a.flag, a.addr, c.name)
				return exitUsage
			}
		}
	}
	build, err := buildID()
	if err != nil {
		c.errorf("node: reading the binary for its build ID: %v", err)
		return exitFailed
	}
	if f.name == "" {
		if f.name, err = os.Hostname(); err != nil {
			f.name = "node"
		}
	}
	var join []string
	for _, j := range strings.Split(f.join, ",") {
		if j = strings.TrimSpace(j); j != "" {
			join = append(join, j)
		}
	}
	ln, err := net.Listen("tcp", f.http)
	if err != nil {
		c.errorf("node: the HTTP API: %v", err)
		return exitFailed
	}
	if sec.api != nil {
		ln = tls.NewListener(ln, sec.api)
	}
	logger := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m, err := membership.Start(membership.Config{Name: f.name, Gossip: f.gossip, Join: join, Profile: f.profile, Logger: logger,
		Meta: membership.Meta{Build: build, Slots: f.slots, Control: f.listen, Data: f.data, HTTP: f.http}, Keys: sec.keys})
	if err != nil {
		ln.Close()
		c.errorf("node: %v", err)
		if strings.Contains(err.Error(), "profile") {
			return exitUsage
		}
		return exitFailed
	}
	n := &nodeServer{c: c, m: m, build: build, jobs: map[string]*nodeJob{}, ctx: context.WithoutCancel(ctx), metrics: &metrics.Collector{},
		peers: peers{jobs: map[string][]nodeJob{}, taken: map[string]bool{}}}
	// The node's calls to its peers' APIs (failover) go with its token
	// and trust its CA.
	nodeAuth.Store(sec.client)
	defer nodeAuth.Store(nil)
	if n.data, err = startDataPlane(n.ctx, n, f.data, build, logger, sec.data); err != nil {
		ln.Close()
		_ = m.Shutdown()
		c.errorf("node: %v", err)
		return exitFailed
	}
	defer n.data.close()
	go n.watchPeers(ctx)
	srv := &http.Server{Handler: requireToken(sec.token, n.routes()), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: log.New(warnWriter{c, "node: the HTTP API: "}, "", 0)} // such as a failed TLS handshake, naming the client
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(c.stderr, "node %s (build %s, %d slots): gossip %s, HTTP %s%s\n", m.Name(), build, f.slots, f.gossip, f.http,
		map[bool]string{true: ", joined " + strings.Join(join, ","), false: ", a new cluster"}[len(join) > 0])
	if note, warn := sec.note(m.Name(), f.insecure); warn {
		c.warnf("%s", note)
	} else {
		fmt.Fprintln(c.stderr, note)
	}
	if spot != nil {
		spotCtx, leave := context.WithCancel(ctx)
		defer leave()
		go c.watchSpot(spotCtx, m.Name(), spot, leave)
		ctx = spotCtx
	}
	code := exitOK
	select {
	case <-ctx.Done():
	case err := <-served:
		c.errorf("node: the HTTP API: %v", err)
		code = exitFailed
	}
	// Drain: the tasks of other nodes' jobs move off this node. Then stop
	// the jobs as 'run' stops one, and leave.
	if n.data != nil && len(n.livePeers()) > 0 {
		n.drain(f.stopTimeout)
	}
	running := n.stopAll()
	if running > 0 {
		fmt.Fprintf(c.stderr, "node %s: stopping %d jobs (within %v)\n", m.Name(), running, f.stopTimeout)
		if !n.waitAll(f.stopTimeout) {
			c.errorf("node: jobs still running after %v (--stop-timeout): cancelling them", f.stopTimeout)
			n.cancelAll()
			n.waitAll(10 * time.Second)
		}
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shut)
	if err := m.Leave(5 * time.Second); err != nil {
		c.warnf("node: leaving the cluster: %v", err)
	}
	fmt.Fprintf(c.stderr, "node %s: left the cluster\n", m.Name())
	return code
}

// nodeServer is a node's HTTP API and the jobs it runs.
type nodeServer struct {
	c     *invocation
	m     *membership.Node
	build string
	ctx   context.Context

	metrics *metrics.Collector
	peers   peers
	data    *dataPlane // nil in tests of the API alone

	mu   sync.Mutex
	jobs map[string]*nodeJob
	seq  int
	wg   sync.WaitGroup
	// stopping: the node stops (stopAll) and starts no more jobs.
	stopping bool
}

// nodeJob is a job a node runs: an invocation of 'run' of its own.
type nodeJob struct {
	ID      string    `json:"id"`
	Args    []string  `json:"args"`
	Started time.Time `json:"started"`
	// State is running, then ended with Exit, the status 'run' would have
	// exited with.
	State string     `json:"state"`
	Exit  int        `json:"exit"`
	Ended *time.Time `json:"ended,omitempty"`
	// Resumes names the job of a dead node this one took over (node/ID).
	Resumes string `json:"resumes,omitempty"`

	// Records counts what the job's sources have read so far, Elapsed
	// how long it has run (filled in when asked).
	Records int64         `json:"records"`
	Elapsed time.Duration `json:"elapsed_ns"`

	// The job's history, once it has ended: its name (JOB), how long it
	// ran, what its sources read (RowsIn) and its sinks wrote (RowsOut),
	// its Result (succeeded, failed, usage error, stopped at a checkpoint,
	// interrupted), and Slow when it took more than twice the median of
	// the same job's earlier runs on this node that succeeded (3 at
	// least); see history.go. Labels are its --label.
	Name     string            `json:"name,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Duration time.Duration     `json:"duration_ns,omitempty"`
	RowsIn   int64             `json:"rows_in"`
	RowsOut  int64             `json:"rows_out"`
	Result   string            `json:"result,omitempty"`
	Slow     bool              `json:"slow,omitempty"`

	inv    *invocation
	x      *actors.Execution // once started; kept after the end
	sigs   chan os.Signal
	cancel context.CancelFunc
	done   chan struct{}
	// stopping: the job was asked to stop (under the node's lock).
	stopping bool
}

// stop asks the job to stop as SIGTERM stops 'run', once: a second signal
// would have it exit at once (cancelled), which cancel is for. The node's
// lock is held.
func (j *nodeJob) stop() {
	if j.State != "running" || j.stopping {
		return
	}
	j.stopping = true
	select {
	case j.sigs <- syscall.SIGTERM:
	default:
	}
}

func (n *nodeServer) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/nodes", n.nodes)
	mux.HandleFunc("POST /v1/jobs", n.submit)
	mux.HandleFunc("GET /v1/jobs", n.listJobs)
	mux.HandleFunc("GET /v1/jobs/{id}", n.job)
	mux.HandleFunc("POST /v1/jobs/{id}/stop", n.stopJob)
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", n.cancelJob)
	mux.HandleFunc("POST /v1/jobs/{id}/savepoint", n.savepoint)
	mux.HandleFunc("POST /v1/jobs/{id}/rescale", n.rescaleJob)
	mux.HandleFunc("GET /v1/jobs/{id}/stats", n.stats)
	mux.HandleFunc("POST /v1/cluster/jobs", n.peerJobs)
	mux.HandleFunc("POST /v1/cluster/fence", n.fenced)
	observe(mux, n.metrics)
	page(mux) // a job's page at /?job=/v1/jobs/ID/stats
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, apiError{fmt.Sprintf("no endpoint %s %s (see 'sluice help node')", r.Method, r.URL.Path)})
	})
	return mux
}

// nodesReply is GET /v1/nodes.
type nodesReply struct {
	Self    string              `json:"self"`
	Build   string              `json:"build"`
	Members []membership.Member `json:"members"`
}

func (n *nodeServer) nodes(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, nodesReply{Self: n.m.Name(), Build: n.build, Members: n.m.Members()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// apiError is the body of an API error.
type apiError struct {
	Error string `json:"error"`
}

// submitRequest is POST /v1/jobs.
type submitRequest struct {
	Args []string `json:"args"`
	// Build, when set, is the client's build ID: a node of another build
	// refuses the job, since it would run other code under the job's name.
	Build string `json:"build,omitempty"`
}

// frame is one line of a job's stream: its ID first, then its output
// (Err: standard error, Out: standard output), then its exit status.
type frame struct {
	Job  string `json:"job,omitempty"`
	Node string `json:"node,omitempty"`
	Err  string `json:"err,omitempty"`
	Out  string `json:"out,omitempty"`
	Exit *int   `json:"exit,omitempty"`
}

func (n *nodeServer) submit(w http.ResponseWriter, r *http.Request) {
	var req submitRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("the request: %v", err)})
		return
	}
	if len(req.Args) == 0 {
		writeJSON(w, http.StatusBadRequest, apiError{"no job: want {\"args\": [JOB, flags...]}"})
		return
	}
	if req.Build != "" && req.Build != n.build {
		writeJSON(w, http.StatusConflict, apiError{fmt.Sprintf("node %s runs build %s, the client is build %s: submit with the node's binary",
			n.m.Name(), n.build, req.Build)})
		return
	}
	flusher, _ := w.(http.Flusher)
	out := newFrameStream(w, flusher)
	if n.start(req.Args, out, "") == nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{fmt.Sprintf("node %s is stopping: submit the job to another node", n.m.Name())})
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK) // the frames queued so far go out with the first drained
	out.drain(r.Context())       // until the job ends or the client goes; the job goes on without it
}

// start runs a job of args on this node, its output framed onto out;
// resumes names the dead node's job it takes over, if any. It returns nil,
// starting nothing, once the node has begun to stop (stopAll).
func (n *nodeServer) start(args []string, out *frameStream, resumes string) *nodeJob {
	ctx, cancel := context.WithCancel(n.ctx)
	j := &nodeJob{Args: args, Started: time.Now(), State: "running", Resumes: resumes, sigs: make(chan os.Signal, 2), cancel: cancel,
		done: make(chan struct{})}
	// The invocation is set before the job is listed: the handlers read
	// it from then on.
	inv := &invocation{name: n.c.name, stdout: out.writer(false), stderr: out.writer(true), signals: j.sigs,
		exit: func(int) { cancel() }}
	j.inv = inv
	inv.spread = func(ctx context.Context, args []string, opts sluice.Options) (sluice.Options, func(*actors.Execution), func(), error) {
		return n.spread(ctx, j.ID, args, opts, func(s string) { inv.warnf("%s", s) })
	}
	inv.slotsNow = func() int {
		if n.data == nil || len(n.livePeers()) == 0 {
			return math.MaxInt // alone, the job runs in this process at any parallelism
		}
		have, free := n.slotsFor(j.ID)
		return have + free
	}
	inv.started = func(x *actors.Execution) {
		n.mu.Lock()
		j.x = x
		n.mu.Unlock()
		n.metrics.Add(metrics.Job{ID: j.ID, Snapshot: x.Snapshot, Running: func() bool { return running(x) }})
	}
	n.mu.Lock()
	if n.stopping {
		n.mu.Unlock()
		cancel()
		return nil
	}
	n.seq++
	j.ID = fmt.Sprintf("%s-%d", n.c.jobName(args), n.seq)
	n.jobs[j.ID] = j
	n.wg.Add(1)
	n.mu.Unlock()
	out.send(frame{Job: j.ID, Node: n.m.Name()})
	if flagValue(args, "checkpoints") != "" {
		n.announce(ctx) // before it runs: if this node dies, another resumes it
	}
	if d, err := time.ParseDuration(flagValue(args, "reactive")); err == nil && d > 0 && n.data != nil {
		go n.react(j, d) // run checks the flag and says what is wrong with it
	}
	go func() {
		defer n.wg.Done()
		code := inv.main(ctx, append([]string{"run"}, args...))
		cancel()
		now := time.Now()
		n.mu.Lock()
		j.State, j.Exit, j.Ended = "ended", code, &now
		n.ended(j)
		n.mu.Unlock()
		close(j.done)
		out.close(code)
	}()
	return j
}

// frameStream carries a job's frames to its client through a bounded
// queue: a client that reads slowly, or is gone, never holds the job up;
// past the queue's room, lines are dropped and counted. The count and the
// exit status are kept apart from the queue, and drain writes them once
// it has written the rest, so that ending the stream never waits.
type frameStream struct {
	w       io.Writer
	flusher http.Flusher
	q       chan frame
	mu      sync.Mutex
	dropped int
	closed  bool
	exit    int
}

func newFrameStream(w io.Writer, f http.Flusher) *frameStream {
	return &frameStream{w: w, flusher: f, q: make(chan frame, 4096)}
}

func (s *frameStream) send(f frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	select {
	case s.q <- f:
	default:
		s.dropped++
	}
}

// close ends the stream with the exit status, which drain writes last.
func (s *frameStream) close(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exit, s.closed = code, true
	close(s.q)
}

// drain writes the frames until the stream ends or ctx is done.
func (s *frameStream) drain(ctx context.Context) {
	enc := json.NewEncoder(s.w)
	for {
		select {
		case f, ok := <-s.q:
			if !ok {
				s.mu.Lock()
				dropped, code := s.dropped, s.exit
				s.mu.Unlock()
				if dropped > 0 {
					_ = enc.Encode(frame{Err: fmt.Sprintf("sluice: node: %d lines of output dropped: the client read too slowly\n", dropped)})
				}
				_ = enc.Encode(frame{Exit: &code})
				if s.flusher != nil {
					s.flusher.Flush()
				}
				return
			}
			if enc.Encode(f) != nil {
				return
			}
			if s.flusher != nil && len(s.q) == 0 {
				s.flusher.Flush()
			}
		case <-ctx.Done():
			go func() { // keep the queue moving, so the job never blocks on it
				for range s.q {
				}
			}()
			return
		}
	}
}

// writer returns a writer of frames to standard error or output, a frame
// a write (the command writes whole lines).
func (s *frameStream) writer(stderr bool) io.Writer {
	return frameWriter{s, stderr}
}

type frameWriter struct {
	s      *frameStream
	stderr bool
}

func (w frameWriter) Write(p []byte) (int, error) {
	if w.stderr {
		w.s.send(frame{Err: string(p)})
	} else {
		w.s.send(frame{Out: string(p)})
	}
	return len(p), nil
}

func (n *nodeServer) listJobs(w http.ResponseWriter, _ *http.Request) {
	n.mu.Lock()
	js := make([]nodeJob, 0, len(n.jobs))
	for _, j := range n.jobs {
		js = append(js, j.snapshot())
	}
	n.mu.Unlock()
	slices.SortFunc(js, func(a, b nodeJob) int { return a.Started.Compare(b.Started) })
	writeJSON(w, http.StatusOK, js)
}

// find returns the job named in the request's path, or replies 404.
func (n *nodeServer) find(w http.ResponseWriter, r *http.Request) (*nodeJob, nodeJob, bool) {
	id := r.PathValue("id")
	n.mu.Lock()
	defer n.mu.Unlock()
	j, ok := n.jobs[id]
	if !ok {
		writeJSON(w, http.StatusNotFound, apiError{fmt.Sprintf("node %s has no job %q", n.m.Name(), id)})
		return nil, nodeJob{}, false
	}
	return j, j.snapshot(), true
}

// snapshot returns the job's state, with its sources' records so far;
// the node's lock is held.
func (j *nodeJob) snapshot() nodeJob {
	s := *j
	end := time.Now()
	if j.Ended != nil {
		end = *j.Ended
	}
	s.Elapsed = end.Sub(j.Started)
	if s.Name == "" && j.inv != nil {
		s.Name = j.inv.jobName(j.Args)
	}
	if x := j.x; x != nil {
		res := x.Snapshot()
		s.Labels = res.Labels
		seen := map[int]bool{}
		for _, st := range res.Stages { // each vertex's first stage, if the vertex reads a source
			if seen[st.Vertex] {
				continue
			}
			seen[st.Vertex] = true
			for _, v := range res.Plan.Vertices {
				if v.ID == st.Vertex && v.Head().Kind == plan.KindSource {
					s.Records += st.Records
				}
			}
		}
		s.RowsIn, s.RowsOut = s.Records, rowsOut(res)
	}
	return s
}

// savepointRequest is POST /v1/jobs/ID/savepoint.
type savepointRequest struct {
	Name    string `json:"name"`
	Timeout string `json:"timeout,omitempty"` // a Go duration; 1m by default
}

type savepointReply struct {
	Checkpoint uint64 `json:"checkpoint"`
	Store      string `json:"store"`
}

func (n *nodeServer) savepoint(w http.ResponseWriter, r *http.Request) {
	j, _, ok := n.find(w, r)
	if !ok {
		return
	}
	var req savepointRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("the request: %v", err)})
		return
	}
	timeout := time.Minute
	if req.Timeout != "" {
		d, err := time.ParseDuration(req.Timeout)
		if err != nil || d <= 0 {
			writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("timeout %q: want a positive duration", req.Timeout)})
			return
		}
		timeout = d
	}
	j.inv.mu.Lock()
	x := j.inv.job
	j.inv.mu.Unlock()
	if x == nil { // not yet started, or ended
		writeJSON(w, http.StatusConflict, apiError{fmt.Sprintf("job %s is not running", j.ID)})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	id, err := x.Savepoint(ctx, req.Name)
	if err != nil {
		writeJSON(w, http.StatusConflict, apiError{fmt.Sprintf("job %s: %v", j.ID, err)})
		return
	}
	writeJSON(w, http.StatusOK, savepointReply{Checkpoint: id, Store: x.CheckpointStore().String()})
}

func (n *nodeServer) job(w http.ResponseWriter, r *http.Request) {
	if _, j, ok := n.find(w, r); ok {
		writeJSON(w, http.StatusOK, j)
	}
}

// stats is GET /v1/jobs/ID/stats: the job's statistics, per stage and
// vertex, as its summary has them.
func (n *nodeServer) stats(w http.ResponseWriter, r *http.Request) {
	j, _, ok := n.find(w, r)
	if !ok {
		return
	}
	n.mu.Lock()
	x := j.x
	n.mu.Unlock()
	if x == nil {
		writeJSON(w, http.StatusConflict, apiError{fmt.Sprintf("job %s has not started", j.ID)})
		return
	}
	writeJSON(w, http.StatusOK, viewOf(j.ID, x))
}

func (n *nodeServer) stopJob(w http.ResponseWriter, r *http.Request) {
	j, snap, ok := n.find(w, r)
	if !ok {
		return
	}
	n.mu.Lock()
	j.stop()
	n.mu.Unlock()
	writeJSON(w, http.StatusOK, snap)
}

func (n *nodeServer) cancelJob(w http.ResponseWriter, r *http.Request) {
	j, snap, ok := n.find(w, r)
	if !ok {
		return
	}
	j.cancel()
	writeJSON(w, http.StatusOK, snap)
}

// stopAll asks every running job to stop and returns how many run; the
// node starts no more.
func (n *nodeServer) stopAll() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stopping = true
	running := 0
	for _, j := range n.jobs {
		if j.State == "running" {
			running++
			j.stop()
		}
	}
	return running
}

func (n *nodeServer) cancelAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, j := range n.jobs {
		j.cancel()
	}
}

// waitAll waits up to d for the jobs to end and reports whether they did.
func (n *nodeServer) waitAll(d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		n.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
