// Command testmain is the sluice command with the test jobs of
// testdata/testjobs linked in besides the bundled examples: the command
// line's tests build it and run it as a process.
package main

import (
	"github.com/sluice-data/sluice"
	_ "github.com/sluice-data/sluice/examples"
	_ "github.com/sluice-data/sluice/testdata/testjobs"
)

func main() { sluice.Main() }
