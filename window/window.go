// Package window holds window and trigger values: immutable descriptions of
// how a keyed stream is cut into panes. It imports only the standard library
// so that the user API, the planner and the core can all share it.
//
// Only the global window exists so far: one window per key spanning all of
// time, which fires once, at the end of input. Event-time windows (fixed,
// sliding, session) and triggers come with event time.
package window

// Window assigns records to windows. The interface is sealed: values come
// from this package's constructors.
type Window interface {
	String() string
	// IsGlobal reports whether this is the global window.
	IsGlobal() bool
	sealed()
}

// Global returns the global window: every record of a key in one window that
// fires when input ends.
func Global() Window { return global{} }

type global struct{}

func (global) String() string { return "global" }
func (global) IsGlobal() bool { return true }
func (global) sealed()        {}
