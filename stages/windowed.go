package stages

import "github.com/sluice-data/sluice/window"

// Windowed is one pane of a windowed aggregation: a key's result in one
// window, with when and how the pane fired.
type Windowed[K comparable, V any] struct {
	Key   K
	Value V
	// Window is the pane's window, [Start, End) in unix nanoseconds.
	Window window.Interval
	// Timestamp is the pane's event time, chosen by the strategy's
	// timestamp combiner (end of window by default).
	Timestamp window.Time
	// Pane says which firing of the window this is: index, on-time index,
	// timing (early, on time, late) and whether it is the last.
	Pane window.PaneInfo
}
