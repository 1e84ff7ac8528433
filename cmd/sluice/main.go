// Command sluice runs the dataflow jobs bundled in package examples:
//
//	sluice jobs                    # lists them
//	sluice run sum-by-key          # runs one in this process
//	sluice plan wordcount          # prints its physical plan
//
// A program with its own jobs links them in and calls cli.Main the same
// way.
package main

import (
	"github.com/sluice-data/sluice/cli"
	_ "github.com/sluice-data/sluice/examples"
)

func main() { cli.Main() }
