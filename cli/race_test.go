//go:build race

package cli

// The tests build the command with -race when they are built so: the
// packages it needs are then in the build cache already.
func init() { buildFlags = append(buildFlags, "-race") }
