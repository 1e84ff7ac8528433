package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/plan"
)

const savepointDoc = `A savepoint is a checkpoint taken on request and kept until it is deleted:
restore it with 'run JOB --checkpoints URL --restore NAME', at any
--parallelism (the key groups must be the same).

  take URL NAME    asks the job running with --checkpoints URL (in this
                   machine or any that reaches the store) for a savepoint
                   named NAME and waits until it is complete (--timeout D
                   before URL: 1m)
  list URL         lists the savepoints in the store
  show URL NAME    shows one: its checkpoint, time, the size of each stage's
                   state, where each source was, the graph's fingerprint
  delete URL NAME  deletes one

  take --to ADDR JOB_ID NAME
                   asks the node at ADDR (its HTTP address) for a savepoint
                   of its job JOB_ID (sluice status --to ADDR lists them)

A name is letters, digits, '.', '_' and '-', not all digits.`

// savepoint runs 'savepoint take|list|show|delete'.
func (c *invocation) savepoint(ctx context.Context, args []string) int {
	if len(args) == 0 {
		c.errorf("savepoint: want take, list, show or delete (run '%s help savepoint')", c.name)
		return exitUsage
	}
	fs := flag.NewFlagSet("savepoint "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	timeout := fs.Duration("timeout", time.Minute, "take: how long to wait for the savepoint")
	to := fs.String("to", "", "take: ask the node at this HTTP address for a savepoint of one of its jobs")
	tokenFile := fs.String("token-file", "", "take --to: a file holding the node's token (default: $"+envToken+")")
	ca := fs.String("tls-ca", "", "take --to: the CA that signed the node's certificate: talk HTTPS (default: $"+envTLSCA+")")
	if err := fs.Parse(args[1:]); err != nil {
		c.errorf("savepoint %s: %v", args[0], err)
		return exitUsage
	}
	if *to != "" {
		if args[0] != "take" || fs.NArg() != 2 {
			c.errorf("savepoint: with --to, want 'take --to ADDR JOB_ID NAME' (run '%s help savepoint')", c.name)
			return exitUsage
		}
		auth, err := clientAuthFrom(*tokenFile, *ca, os.Getenv)
		if err != nil {
			c.errorf("savepoint take: %v", err)
			return exitUsage
		}
		return c.takeSavepointOn(ctx, &remote{to: *to, http: auth.httpClient(0), auth: auth}, fs.Arg(0), fs.Arg(1), *timeout)
	}
	want := map[string]int{"take": 2, "list": 1, "show": 2, "delete": 2}[args[0]]
	if want == 0 || fs.NArg() != want {
		c.errorf("savepoint: want 'take URL NAME', 'list URL', 'show URL NAME' or 'delete URL NAME' (run '%s help savepoint')", c.name)
		return exitUsage
	}
	store, err := checkpoints.Open(ctx, fs.Arg(0))
	if err != nil {
		c.errorf("savepoint: %v", err)
		return exitUsage
	}
	d, name := checkpoints.New(store), fs.Arg(1)
	switch args[0] {
	case "take":
		return c.takeSavepoint(ctx, d, name, *timeout)
	case "list":
		return c.listSavepoints(ctx, d)
	case "show":
		m, err := d.FindSavepoint(ctx, name)
		if err == nil && m == nil {
			c.errorf("savepoint: %s holds no savepoint %q", store, name)
			return exitUsage
		}
		if err != nil {
			c.errorf("savepoint: %v", err)
			return exitFailed
		}
		return c.showCheckpoint(ctx, d, m.ID)
	default:
		if err := d.DeleteSavepoint(ctx, name); err != nil {
			c.errorf("savepoint: %v", err)
			if errors.Is(err, checkpoints.ErrInvalid) {
				return exitUsage
			}
			return exitFailed
		}
		fmt.Fprintf(c.stdout, "deleted savepoint %q\n", name)
		return exitOK
	}
}

// takeSavepoint asks for savepoint name and waits for it.
func (c *invocation) takeSavepoint(ctx context.Context, d *checkpoints.Dir, name string, timeout time.Duration) int {
	if err := d.RequestSavepoint(ctx, name); err != nil {
		c.errorf("savepoint: %v", err)
		if errors.Is(err, checkpoints.ErrSavepointName) {
			return exitUsage
		}
		return exitFailed
	}
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		m, err := d.FindSavepoint(ctx, name)
		if err != nil {
			c.errorf("savepoint: %v", err)
			return exitFailed
		}
		if m != nil {
			fmt.Fprintf(c.stdout, "savepoint %q: checkpoint %d of job %q, run %s\n", name, m.ID, m.Job, m.Run)
			return exitOK
		}
		if why, failed, err := d.RequestFailed(ctx, name); err != nil || failed {
			c.errorf("savepoint %q: the job could not take it: %s%v", name, why, err)
			return exitFailed
		}
		if time.Now().After(deadline) {
			_ = d.DropRequest(context.WithoutCancel(ctx), name)
			c.errorf("savepoint %q: no job took it within %v: is one running with --checkpoints %s?", name, timeout, d.Store())
			return exitFailed
		}
		select {
		case <-ctx.Done():
			_ = d.DropRequest(context.WithoutCancel(ctx), name)
			return c.status(ctx.Err())
		case <-tick.C:
		}
	}
}

// takeSavepointOn asks a node for savepoint name of its job id.
func (c *invocation) takeSavepointOn(ctx context.Context, r *remote, id, name string, timeout time.Duration) int {
	if err := checkpoints.CheckSavepointName(name); err != nil {
		c.errorf("savepoint: %v", err)
		return exitUsage
	}
	var rep savepointReply
	if err := r.call(ctx, http.MethodPost, "/v1/jobs/"+id+"/savepoint", savepointRequest{Name: name, Timeout: timeout.String()}, &rep); err != nil {
		c.errorf("savepoint %q: %v", name, err)
		if strings.Contains(err.Error(), "has no job") {
			return exitUsage
		}
		return exitFailed
	}
	fmt.Fprintf(c.stdout, "savepoint %q: checkpoint %d of job %s, in %s\n", name, rep.Checkpoint, id, rep.Store)
	return exitOK
}

func (c *invocation) listSavepoints(ctx context.Context, d *checkpoints.Dir) int {
	sps, err := d.Savepoints(ctx)
	if err != nil {
		c.errorf("savepoint: %v", err)
		return exitFailed
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCHECKPOINT\tJOB\tRUN\tTIME\tSIZE\tGRAPH")
	for _, m := range sps {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", m.Savepoint, m.ID, m.Job, m.Run,
			time.UnixMilli(m.Time).UTC().Format(time.RFC3339Nano), plan.FormatBytes(m.Size()), m.Graph)
	}
	tw.Flush()
	return exitOK
}

// serveSavepoints takes the savepoints asked for in the job's store
// (savepoint take) until stop is closed. A request is deleted before its
// savepoint is taken, so that a process killed after taking it does not
// leave it for the next run of the job to take again: one killed before
// leaves the asker to time out.
func (c *invocation) serveSavepoints(ctx context.Context, x *actors.Execution, d *checkpoints.Dir, every time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(min(max(every, 10*time.Millisecond), 250*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		names, err := d.SavepointRequests(ctx)
		if err != nil {
			c.warnf("savepoints: %v", err)
			continue
		}
		for _, name := range names {
			if err := d.DropRequest(ctx, name); err != nil {
				c.warnf("savepoint %q: %v", name, err)
				continue
			}
			id, err := x.Savepoint(ctx, name)
			if err != nil {
				c.warnf("%v", err)
				if ferr := d.FailRequest(context.WithoutCancel(ctx), name, err); ferr != nil {
					c.warnf("savepoint %q: %v", name, ferr)
				}
				continue
			}
			c.printf("", "savepoint %q: checkpoint %d", name, id)
		}
	}
}
