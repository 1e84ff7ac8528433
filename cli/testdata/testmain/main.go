// Command testmain is the sluice command with the test jobs of
// testdata/testjobs linked in besides the bundled examples: the command
// line's tests build it and run it as a process.
package main

import (
	"github.com/sluice-data/sluice/cli"
	_ "github.com/sluice-data/sluice/cli/testdata/testjobs"
	_ "github.com/sluice-data/sluice/examples"
)

func main() { cli.Main() }
