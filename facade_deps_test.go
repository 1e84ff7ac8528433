package sluice_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestFacadeLinksNoCommandLine: a program that calls sluice.Run links
// neither the command line (package cli) nor its progress bars (mpb).
func TestFacadeLinksNoCommandLine(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps .: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/sluice-data/sluice/cli" || strings.HasPrefix(dep, "github.com/sluice-data/sluice/cli/") ||
			strings.HasPrefix(dep, "github.com/vbauerster/mpb") {
			t.Errorf("package sluice depends on %s", dep)
		}
	}
}
