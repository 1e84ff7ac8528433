package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

const remoteDoc = `The client commands talk to a node's HTTP API (sluice node; --to is its
HTTP address, --listen's port + 3):

  submit --to ADDR JOB [flags of run]   runs JOB on the node, printing its
                                        ID, its output and its summary, and
                                        exits with its status; the first
                                        SIGTERM or SIGINT stops it as 'run'
                                        does, a second leaves it to the node
  status --to ADDR [JOB_ID]             the node's jobs, or one
  stop --to ADDR JOB_ID                 stops a job as SIGTERM stops 'run'
  cancel --to ADDR JOB_ID               cancels a job
  savepoint take --to ADDR JOB_ID NAME  takes a savepoint of a job that
                                        runs with --checkpoints
  rescale --to ADDR JOB_ID N            goes on with a job that runs with
                                        --checkpoints at parallelism N: it
                                        stops at a checkpoint taken now and
                                        starts from it at N on the live
                                        nodes (a node that joined takes
                                        slots; N up to --max-parallelism)
  nodes --to ADDR                       the cluster's members as the node
                                        sees them

A node run with --token-file wants its token, and one run with --tls-cert
speaks HTTPS: give --token-file FILE and --tls-ca FILE (the CA that signed
the node's certificate) after --to, or set SLUICE_TOKEN and SLUICE_TLS_CA.`

// remote is a client of a node's API.
type remote struct {
	to   string
	http *http.Client
	// auth is the token it sends and the CA it trusts (HTTPS); nil: the
	// environment's (SLUICE_TOKEN, SLUICE_TLS_CA), read at each call.
	auth *clientAuth
}

// remoteFlags parses --to (before the other arguments) for cmd.
func (c *invocation) remoteFlags(cmd string, args []string) (*remote, []string, int) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	to := fs.String("to", "", "the node's HTTP address")
	tokenFile := fs.String("token-file", "", "a file holding the node's token (default: $"+envToken+")")
	ca := fs.String("tls-ca", "", "the CA that signed the node's certificate: talk HTTPS (default: $"+envTLSCA+")")
	if err := fs.Parse(args); err != nil {
		c.errorf("%s: %v (run '%s help %s')", cmd, err, c.name, cmd)
		return nil, nil, exitUsage
	}
	if *to == "" {
		c.errorf("%s: missing --to HOST:PORT, a node's HTTP address (run '%s help %s')", cmd, c.name, cmd)
		return nil, nil, exitUsage
	}
	auth, err := clientAuthFrom(*tokenFile, *ca, os.Getenv)
	if err != nil {
		c.errorf("%s: %v", cmd, err)
		return nil, nil, exitUsage
	}
	return &remote{to: *to, http: auth.httpClient(0), auth: auth}, fs.Args(), -1
}

// settings returns the client and the token r's requests go with.
func (r *remote) settings() (*http.Client, *clientAuth, error) {
	if r.auth != nil {
		return r.http, r.auth, nil
	}
	a, err := clientAuthFrom("", "", os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	return a.httpClient(r.http.Timeout), a, nil
}

func (r *remote) url(a *clientAuth, path string) string {
	if strings.Contains(r.to, "://") {
		return strings.TrimSuffix(r.to, "/") + path
	}
	if a.ca != nil {
		return "https://" + r.to + path
	}
	return "http://" + r.to + path
}

// do sends a request of method for path with body (JSON, or nil) and
// returns the node's reply with status 200, or the node's error.
func (r *remote) do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	client, a, err := r.settings()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, r.url(a, path), body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, r.transportError(a, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, r.statusError(a, resp)
	}
	return resp, nil
}

// transportError says what an error of a request to the node means when
// HTTPS is the cause.
func (r *remote) transportError(a *clientAuth, err error) error {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	switch {
	case a.ca != nil && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("node %s serves plain HTTP, not HTTPS: drop --tls-ca (and %s): %w", r.to, envTLSCA, err)
	case errors.As(err, &unknown):
		return fmt.Errorf("node %s: its certificate is not signed by the CA of --tls-ca (or %s): %w", r.to, envTLSCA, err)
	case errors.As(err, &invalid), errors.As(err, &host):
		return fmt.Errorf("node %s: its certificate does not verify: %w", r.to, err)
	}
	return fmt.Errorf("node %s: %w", r.to, err)
}

// statusError is the error of a reply whose status is not 200: the node's
// own, or what a plain HTTP request to an HTTPS node gets.
func (r *remote) statusError(a *clientAuth, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e apiError
	switch {
	case json.Unmarshal(b, &e) == nil && e.Error != "":
		return &nodeError{status: resp.StatusCode, msg: fmt.Sprintf("node %s: %s", r.to, e.Error)}
	case resp.StatusCode == http.StatusBadRequest && a.ca == nil && strings.Contains(string(b), "HTTP request to an HTTPS server"):
		return &nodeError{status: resp.StatusCode, msg: fmt.Sprintf("node %s serves HTTPS: give the CA that signed its certificate "+
			"(--tls-ca FILE or %s)", r.to, envTLSCA)}
	}
	return &nodeError{status: resp.StatusCode, msg: fmt.Sprintf("node %s: %s", r.to, resp.Status)}
}

// nodeError is a node's reply of an error status.
type nodeError struct {
	status int
	msg    string
}

func (e *nodeError) Error() string { return e.msg }

// call sends a request and decodes the JSON reply into v, or returns the
// node's error.
func (r *remote) call(ctx context.Context, method, path string, body, v any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	resp, err := r.do(ctx, method, path, rd)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if v == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// submit runs 'submit --to ADDR JOB [flags]'.
func (c *invocation) submit(ctx context.Context, args []string) int {
	r, rest, code := c.remoteFlags("submit", args)
	if code >= 0 {
		return code
	}
	// The flags of run, checked here so that a mistake is found before
	// the node is asked.
	fs, f := c.runFlags()
	if _, code := c.pipeline(fs, f, rest); code >= 0 {
		return code
	}
	build, err := buildID()
	if err != nil {
		c.errorf("submit: reading the binary for its build ID: %v", err)
		return exitFailed
	}
	body, _ := json.Marshal(submitRequest{Args: rest, Build: build})
	// The request outlives ctx (cancelled at the first signal): the job is
	// asked to stop and its stream read to the end.
	resp, err := r.do(context.WithoutCancel(ctx), http.MethodPost, "/v1/jobs", bytes.NewReader(body))
	if err != nil {
		c.errorf("submit: %v", err)
		var ne *nodeError
		if errors.As(err, &ne) && (ne.status == http.StatusConflict || ne.status == http.StatusBadRequest) {
			return exitUsage
		}
		return exitFailed
	}
	defer resp.Body.Close()
	frames := make(chan frame)
	readErr := make(chan error, 1)
	go func() {
		defer close(frames)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var fr frame
			if err := json.Unmarshal(sc.Bytes(), &fr); err != nil {
				readErr <- fmt.Errorf("a line of the job's stream: %w", err)
				return
			}
			frames <- fr
		}
		readErr <- sc.Err()
	}()
	var id string
	// stop: the first signal has come; the job is asked to stop once it
	// is named (the signal may come before its ID).
	stop, stopSent := false, false
	for {
		if stop && !stopSent && id != "" {
			stopSent = true
			if err := r.call(context.Background(), http.MethodPost, "/v1/jobs/"+id+"/stop", nil, nil); err != nil {
				c.errorf("submit: stopping job %s: %v", id, err)
			}
		}
		select {
		case <-ctx.Done():
			stop = true
			ctx = context.Background() // once
		case fr, ok := <-frames:
			if !ok {
				err := <-readErr
				c.errorf("submit: node %s: the job's stream ended before its exit status%s", r.to, errSuffix(err))
				if id != "" {
					c.errorf("submit: job %s may still run there ('%s status --to %s %s'); if the node died, another node "+
						"resumes a job run with --checkpoints from its latest checkpoint ('%s status --to ANOTHER' shows it)", id, c.name, r.to, id, c.name)
				}
				return exitFailed
			}
			switch {
			case fr.Job != "":
				id = fr.Job
				fmt.Fprintf(c.stderr, "job %s on node %s\n", id, fr.Node)
			case fr.Exit != nil:
				return *fr.Exit
			default:
				io.WriteString(c.stderr, fr.Err)
				io.WriteString(c.stdout, fr.Out)
			}
		}
	}
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

// nodes runs 'nodes --to ADDR'.
func (c *invocation) nodes(ctx context.Context, args []string) int {
	r, rest, code := c.remoteFlags("nodes", args)
	if code >= 0 {
		return code
	}
	if len(rest) > 0 {
		c.errorf("nodes: unexpected argument %q", rest[0])
		return exitUsage
	}
	var rep nodesReply
	if err := r.call(ctx, http.MethodGet, "/v1/nodes", nil, &rep); err != nil {
		c.errorf("nodes: %v", err)
		return exitFailed
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tSINCE\tSLOTS\tGOSSIP\tHTTP\tBUILD")
	for _, m := range rep.Members {
		name := m.Name
		if name == rep.Self {
			name += " (this node)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", name, m.State, m.Since.UTC().Format("15:04:05.000"), m.Meta.Slots, m.Gossip, m.Meta.HTTP, m.Meta.Build)
	}
	tw.Flush()
	return exitOK
}

// rescaleCommand runs 'rescale'.
func (c *invocation) rescaleCommand(ctx context.Context, args []string) int {
	r, rest, code := c.remoteFlags("rescale", args)
	if code >= 0 {
		return code
	}
	if len(rest) != 2 {
		c.errorf("rescale: want --to ADDR JOB_ID N (run '%s help rescale')", c.name)
		return exitUsage
	}
	to, err := strconv.Atoi(rest[1])
	if err != nil || to < 1 {
		c.errorf("rescale: parallelism %q: want a whole number, 1 or more", rest[1])
		return exitUsage
	}
	var reply rescaleReply
	if err := r.call(ctx, http.MethodPost, "/v1/jobs/"+rest[0]+"/rescale", rescaleRequest{Parallelism: to}, &reply); err != nil {
		c.errorf("rescale: %v", err)
		if strings.Contains(err.Error(), "has no job") {
			return exitUsage
		}
		return exitFailed
	}
	fmt.Fprintf(c.stderr, "job %s: a rescale from parallelism %d to %d asked: it goes on from a checkpoint taken now\n", reply.Job, reply.From, reply.To)
	return exitOK
}

// jobCommand runs 'status', 'stop' and 'cancel'.
func (c *invocation) jobCommand(ctx context.Context, cmd string, args []string) int {
	r, rest, code := c.remoteFlags(cmd, args)
	if code >= 0 {
		return code
	}
	switch {
	case cmd == "status" && len(rest) > 1, cmd != "status" && len(rest) != 1:
		c.errorf("%s: want --to ADDR %s (run '%s help %s')", cmd, map[bool]string{true: "[JOB_ID]", false: "JOB_ID"}[cmd == "status"], c.name, cmd)
		return exitUsage
	}
	var jobs []nodeJob
	var err error
	switch {
	case cmd == "status" && len(rest) == 0:
		err = r.call(ctx, http.MethodGet, "/v1/jobs", nil, &jobs)
	case cmd == "status":
		var j nodeJob
		err = r.call(ctx, http.MethodGet, "/v1/jobs/"+rest[0], nil, &j)
		jobs = append(jobs, j)
	default:
		var j nodeJob
		err = r.call(ctx, http.MethodPost, "/v1/jobs/"+rest[0]+"/"+cmd, nil, &j)
		if err == nil && j.State != "running" {
			err = fmt.Errorf("job %s has ended (exit %d)", j.ID, j.Exit)
		}
		if err == nil {
			fmt.Fprintf(c.stderr, "job %s: %s asked\n", j.ID, map[string]string{"stop": "a stop", "cancel": "cancellation"}[cmd])
			return exitOK
		}
	}
	if err != nil {
		c.errorf("%s: %v", cmd, err)
		if strings.Contains(err.Error(), "has no job") {
			return exitUsage
		}
		return exitFailed
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tEXIT\tSTARTED\tELAPSED\tREAD\tCOMMAND")
	for _, j := range jobs {
		exit := ""
		if j.Ended != nil {
			exit = fmt.Sprint(j.Exit)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", j.ID, j.State, exit, j.Started.UTC().Format("15:04:05"),
			j.Elapsed.Round(time.Millisecond), j.Records, strings.Join(j.Args, " "))
	}
	tw.Flush()
	return exitOK
}
