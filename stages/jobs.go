package stages

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Job is a registered job: a name and the function that builds its graph.
// Every process of one binary registers the same jobs at init, so a job can
// be rebuilt anywhere from its name and arguments.
type Job struct {
	Name  string
	Doc   string
	Loc   string
	build func(*Pipeline, Args)
}

var registry = struct {
	sync.Mutex
	jobs map[string]*Job
}{jobs: map[string]*Job{}}

// Register registers a job under name. Call it from a package-level var or
// init; registering a name twice panics with both locations.
func Register(name string, build func(p *Pipeline, args Args)) *Job {
	loc := caller()
	registry.Lock()
	defer registry.Unlock()
	if prev, ok := registry.jobs[name]; ok {
		panic(fmt.Sprintf("stages: %s: job %q is already registered at %s", loc, name, prev.Loc))
	}
	if build == nil || name == "" {
		panic(fmt.Sprintf("stages: %s: Register needs a name and a build function", loc))
	}
	j := &Job{Name: name, Loc: loc, build: build}
	registry.jobs[name] = j
	return j
}

// Describe sets the job's one-line description, shown by `sluice jobs`.
func (j *Job) Describe(doc string) *Job { j.Doc = doc; return j }

// Lookup returns the job registered under name.
func Lookup(name string) (*Job, bool) {
	registry.Lock()
	defer registry.Unlock()
	j, ok := registry.jobs[name]
	return j, ok
}

// Jobs returns the registered jobs sorted by name.
func Jobs() []*Job {
	registry.Lock()
	defer registry.Unlock()
	out := make([]*Job, 0, len(registry.jobs))
	for _, j := range registry.jobs {
		out = append(out, j)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// Build builds the job's graph with the given arguments. Arguments the job
// does not read, arguments that do not parse and graph-building mistakes are
// all reported.
func (j *Job) Build(args map[string]string) (*Pipeline, error) {
	p := NewPipeline(j.Name)
	a := Args{m: args, used: map[string]bool{}, empty: map[string]bool{}, p: p}
	j.build(p, a)
	var unknown []string
	for k := range args {
		if !a.used[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		p.errs = append(p.errs, fmt.Errorf("%w: job %q takes no argument %s", ErrBuild, j.Name, strings.Join(unknown, ", ")))
	}
	return p, p.Err()
}

// Args are a job's arguments. Each getter returns the default when the
// argument is absent; a value that does not parse is reported by Build with
// the argument's name, and so is a value given as empty (--arg out=) unless
// the job allows it (AllowEmpty): an empty value never silently takes the
// default.
type Args struct {
	m     map[string]string
	used  map[string]bool
	empty map[string]bool // arguments that may be given as empty
	p     *Pipeline
}

// AllowEmpty declares that the arguments keys may be given as empty: String
// returns "" for them rather than reporting an error. Call it before
// reading them.
func (a Args) AllowEmpty(keys ...string) {
	if a.empty == nil {
		return
	}
	for _, k := range keys {
		a.empty[k] = true
	}
}

func (a Args) get(k string) (string, bool) {
	if a.used != nil {
		a.used[k] = true
	}
	v, ok := a.m[k]
	return v, ok
}

func (a Args) bad(k, v, want string, err error) {
	if a.p != nil {
		a.p.errs = append(a.p.errs, fmt.Errorf("%w: argument %s=%q: want %s: %v", ErrBuild, k, v, want, err))
	}
}

// Fail reports that argument k's value is unusable, for checks a job makes
// itself ("keys must be positive"); Build returns it with the others.
func (a Args) Fail(k string, format string, args ...any) {
	if a.p != nil {
		v, _ := a.m[k]
		a.p.errs = append(a.p.errs, fmt.Errorf("%w: argument %s=%q: %s", ErrBuild, k, v, fmt.Sprintf(format, args...)))
	}
}

// String returns argument k. An empty value is an error, reported by
// Build, unless AllowEmpty allowed it.
func (a Args) String(k, def string) string {
	v, ok := a.get(k)
	if !ok {
		return def
	}
	if v == "" && !a.empty[k] {
		if a.p != nil {
			hint := "give it a value, or leave it out"
			if def != "" {
				hint += fmt.Sprintf(" for the default %q", def)
			}
			a.p.errs = append(a.p.errs, fmt.Errorf("%w: --arg %s= is empty: %s", ErrBuild, k, hint))
		}
		return def
	}
	return v
}

// Int returns argument k as an int.
func (a Args) Int(k string, def int) int {
	v, ok := a.get(k)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		a.bad(k, v, "an integer", err)
		return def
	}
	return n
}

// Float returns argument k as a float64.
func (a Args) Float(k string, def float64) float64 {
	v, ok := a.get(k)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		a.bad(k, v, "a number", err)
		return def
	}
	return f
}

// Bool returns argument k as a bool.
func (a Args) Bool(k string, def bool) bool {
	v, ok := a.get(k)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		a.bad(k, v, "true or false", err)
		return def
	}
	return b
}

// Duration returns argument k as a time.Duration ("1m30s").
func (a Args) Duration(k string, def time.Duration) time.Duration {
	v, ok := a.get(k)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		a.bad(k, v, "a duration", err)
		return def
	}
	return d
}
