package stages_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/stages"
)

var argsJob = stages.Register("test-empty-args", func(p *stages.Pipeline, args stages.Args) {
	args.AllowEmpty("prefix")
	out := args.String("out", "/tmp/default")
	prefix := args.String("prefix", "p-")
	stages.ForEach(stages.FromSlice(p, []string{out, prefix}), func(string) error { return nil })
	gotArgs = [2]string{out, prefix}
})

var gotArgs [2]string

// TestEmptyArgumentIsAnError: an argument given as empty does not fall
// back to its default silently; one the job allows to be empty is "".
func TestEmptyArgumentIsAnError(t *testing.T) {
	for _, tc := range []struct {
		args    map[string]string
		want    [2]string
		wantErr string
	}{
		{map[string]string{}, [2]string{"/tmp/default", "p-"}, ""},
		{map[string]string{"out": "/data"}, [2]string{"/data", "p-"}, ""},
		{map[string]string{"prefix": ""}, [2]string{"/tmp/default", ""}, ""},
		{map[string]string{"out": ""}, [2]string{"/tmp/default", "p-"}, `--arg out= is empty`},
	} {
		_, err := argsJob.Build(tc.args)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, stages.ErrBuild)):
			t.Errorf("%v: err = %v, want a build error with %q", tc.args, err, tc.wantErr)
		case gotArgs != tc.want:
			t.Errorf("%v: got %q, want %q", tc.args, gotArgs, tc.want)
		}
	}
}

// TestPipelineRunsOnce: BeginRun names the pipeline the second time.
func TestPipelineRunsOnce(t *testing.T) {
	p := stages.NewPipeline("once")
	if err := p.BeginRun(); err != nil {
		t.Fatal(err)
	}
	err := p.BeginRun()
	if !errors.Is(err, stages.ErrRanAlready) || !strings.Contains(err.Error(), `pipeline "once"`) {
		t.Errorf("second BeginRun: %v, want ErrRanAlready naming the pipeline", err)
	}
}
