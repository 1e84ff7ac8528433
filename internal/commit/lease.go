package commit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrLeased is wrapped when another run holds an output's lease.
var ErrLeased = errors.New("commit: output is being written by another run")

// ErrLeaseLost is wrapped when a run's lease was taken over (it expired)
// before the run could publish: it must not publish.
var ErrLeaseLost = errors.New("commit: lease lost")

// leaseDir is where lease files live inside an output.
const leaseDir = "lease"

// leaseRecord is the content of a lease file.
type leaseRecord struct {
	Epoch    int64  `json:"epoch"`
	Job      string `json:"job"`
	Run      string `json:"run"`
	Host     string `json:"host"`
	PID      int    `json:"pid"`
	Start    string `json:"pid_start,omitempty"` // the process's start time, against PID reuse
	Taken    string `json:"taken"`
	Expires  int64  `json:"expires_unix_ms"`
	Released bool   `json:"released"`
	// Dirty: the run ended leaving files to clean up (a failed delete);
	// the next run cleans up as after a crash.
	Dirty bool `json:"dirty,omitempty"`
}

func (l *leaseRecord) encode() []byte {
	b, _ := json.MarshalIndent(l, "", "  ")
	return append(b, '\n')
}

func (l *leaseRecord) holder() string {
	return fmt.Sprintf("run %s of job %q (pid %d on %s, since %s)", l.Run, l.Job, l.PID, l.Host, l.Taken)
}

// alive reports whether the lease's holder may still be running: its lease
// has not expired, and when it ran on this host, its process exists.
func (l *leaseRecord) alive(now time.Time, host string) bool {
	if l.Released {
		return false
	}
	if l.Host == host && l.PID > 0 {
		if !processAlive(l.PID, l.Start) {
			return false
		}
	}
	return now.UnixMilli() < l.Expires
}

// processAlive reports whether process pid exists and, when start is
// known, is the process that started then.
func processAlive(pid int, start string) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	if start != "" {
		if s := processStart(pid); s != "" && s != start {
			return false // the PID was reused
		}
	}
	return true
}

// processStart returns a process's start time in clock ticks since boot
// (field 22 of /proc/PID/stat), or "" where /proc is not there.
func processStart(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// lease is a held lease.
type lease struct {
	fsys    FS
	path    string
	lock    string
	rec     leaseRecord
	version string
	prev    *leaseRecord // the lease taken over, if it was not released
}

func leaseName(epoch int64) string { return fmt.Sprintf("%020d", epoch) }

// currentLease returns the highest-epoch lease of an output, nil if none.
func currentLease(ctx context.Context, fsys FS, dir string) (*leaseRecord, string, error) {
	files, _, err := fsys.List(ctx, dir)
	if errors.Is(err, ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	var best int64 = -1
	for _, f := range files {
		if e, err := strconv.ParseInt(f.Name, 10, 64); err == nil && len(f.Name) == 20 && e > best {
			best = e
		}
	}
	if best < 0 {
		return nil, "", nil
	}
	p := fsys.Join(dir, leaseName(best))
	data, version, err := fsys.ReadFile(ctx, p)
	if err != nil {
		return nil, "", fmt.Errorf("reading lease %s: %w", fsys.Display(p), err)
	}
	var rec leaseRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, "", fmt.Errorf("reading lease %s: %w", fsys.Display(p), err)
	}
	rec.Epoch = best
	return &rec, version, nil
}

// takeLease takes the lease of the output at out for a run: a new epoch
// above the current one, created only if absent, so that of two runs
// racing for it one wins. A lease held by a live run fails with ErrLeased.
func takeLease(ctx context.Context, fsys FS, out string, o *Options) (*lease, error) {
	dir := fsys.Join(out, InternalDir, leaseDir)
	cur, _, err := currentLease(ctx, fsys, dir)
	if err != nil {
		return nil, err
	}
	now := o.Now()
	host, _ := os.Hostname()
	// A run resumed in a new process while an earlier process of the same
	// run still holds the lease (frozen, cut off, or on a node found dead)
	// waits it out: the earlier process either renews it, and goes on
	// holding the output, or loses it at its expiry and is fenced. Two
	// lease times at most.
	for waited := time.Duration(0); cur != nil && cur.alive(now, host) && o.Resume && cur.Run == o.Run && waited < 2*o.LeaseTTL; {
		d := min(time.UnixMilli(cur.Expires).Sub(now)+50*time.Millisecond, 2*o.LeaseTTL-waited)
		o.Logger.Warn("waiting for an earlier process of the run to let go of the output's lease",
			"output", fsys.Display(out), "holder", cur.holder(), "expires", time.UnixMilli(cur.Expires).UTC())
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		waited += d
		if cur, _, err = currentLease(ctx, fsys, dir); err != nil {
			return nil, err
		}
		now = o.Now()
	}
	if cur != nil && cur.alive(now, host) {
		return nil, fmt.Errorf("%s: %w: %s; its lease expires at %s unless renewed",
			fsys.Display(out), ErrLeased, cur.holder(), time.UnixMilli(cur.Expires).UTC().Format(time.RFC3339))
	}
	l := &lease{fsys: fsys, lock: fsys.Join(out, InternalDir)}
	l.rec = leaseRecord{Epoch: 1, Job: o.Job, Run: o.Run, Host: host, PID: os.Getpid(), Start: processStart(os.Getpid()),
		Taken: nowString(now), Expires: now.Add(o.LeaseTTL).UnixMilli()}
	if cur != nil {
		l.rec.Epoch = cur.Epoch + 1
		if !cur.Released || cur.Dirty {
			l.prev = cur
		}
	}
	l.path = fsys.Join(dir, leaseName(l.rec.Epoch))
	l.version, err = fsys.WriteFile(ctx, l.path, l.rec.encode(), Cond{IfAbsent: true})
	if errors.Is(err, ErrPrecondition) {
		// Another run took this epoch first.
		if won, _, rerr := currentLease(ctx, fsys, dir); rerr == nil && won != nil {
			return nil, fmt.Errorf("%s: %w: %s", fsys.Display(out), ErrLeased, won.holder())
		}
		return nil, fmt.Errorf("%s: %w: another run took it at the same time", fsys.Display(out), ErrLeased)
	}
	if err != nil {
		return nil, fmt.Errorf("taking the lease %s: %w", fsys.Display(l.path), err)
	}
	// Older lease files have no more use.
	for e := l.rec.Epoch - 1; e >= max(1, l.rec.Epoch-8); e-- {
		_ = fsys.Remove(ctx, fsys.Join(dir, leaseName(e)))
	}
	return l, nil
}

// update rewrites the lease, conditionally on its last version: a lease
// taken over meanwhile is never written again.
func (l *lease) update(ctx context.Context, rec leaseRecord) error {
	v, err := l.fsys.WriteFile(ctx, l.path, rec.encode(), Cond{IfMatch: l.version, Lock: l.lock})
	if err != nil {
		return err
	}
	l.rec, l.version = rec, v
	return nil
}

// check fails unless l is still the output's current lease and not expired.
func (l *lease) check(ctx context.Context, now time.Time) error {
	cur, _, err := currentLease(ctx, l.fsys, dirOf(l.fsys, l.path))
	if err != nil {
		return fmt.Errorf("checking the lease: %w", err)
	}
	if cur == nil || cur.Epoch != l.rec.Epoch {
		who := "nobody"
		if cur != nil {
			who = cur.holder()
		}
		return fmt.Errorf("%w: epoch %d was taken over by %s", ErrLeaseLost, l.rec.Epoch, who)
	}
	if now.UnixMilli() >= l.rec.Expires {
		return fmt.Errorf("%w: epoch %d expired at %s without being renewed", ErrLeaseLost, l.rec.Epoch,
			time.UnixMilli(l.rec.Expires).UTC().Format(time.RFC3339Nano))
	}
	return nil
}

func dirOf(fsys FS, p string) string {
	d, _ := split(fsys, p)
	return d
}
