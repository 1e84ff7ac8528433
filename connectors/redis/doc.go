// Package redis writes online features to Redis: the panes of windowed
// aggregations (Features) or any records under keys of the user's choosing
// (Sink).
//
// # Layout of Features
//
// Each pane goes to a hash named after its key and its window's start:
//
//	<prefix>:<key>:<window start in unix milliseconds>
//	<prefix>:<key>:global                  (the global window)
//
// (WindowKey computes the name; the key is rendered with KeyString, or
// fmt.Sprint). What the hash holds depends on the accumulation mode of the
// windowing strategy that produced the panes, which the sink must be told
// (Mode, or For with the strategy itself; the default, Discarding, is also
// the window package's default):
//
//   - Accumulating: each pane holds every record of the window so far, so
//     the hash holds the latest pane: fields value (the encoded value), end
//     (the window's end in unix milliseconds), pane (the pane index) and
//     timing (early, on-time or late). A pane replaces the stored one only
//     if it is not older (a later window end, as when a session grows, or
//     the same end and an index at least as high), checked and written
//     atomically by a Lua script. So the value never goes back to an earlier
//     pane, whatever order panes arrive in, and a replay leaves it as it was.
//     The hash also holds the job's attempt (field attempt), and a pane of a
//     later attempt replaces any of an earlier one: a job that checkpoints
//     recovers and stops with an accumulating sink (it is a stages.Reopener),
//     and after a recovery from checkpoint n the panes the failed attempt
//     wrote after n, which are not the job's, give way to the replay's, while
//     a write of the failed attempt that lands late is kept out. Until the
//     replay has passed them again, such keys show the checkpoint's pane.
//   - Discarding: each pane holds only the records since the previous pane,
//     so each is stored in its own field, pane:<index>, and a reader
//     combines the fields (sums them, say). Writing a pane again writes the
//     same field with the same value. Merging windows (sessions) restart
//     their pane index when they merge, so their discarding panes cannot be
//     stored this way: For rejects that combination; use accumulating panes
//     for sessions. A discarding sink does not recover from checkpoints: the
//     pane fields a failed attempt wrote after the checkpoint would stay
//     beside the replay's (numbered from the checkpoint's panes), and a
//     reader summing them would count records twice; a job with one fails
//     instead, naming the sink.
//
// Using the wrong mode loses data silently: an accumulating sink given
// discarding panes keeps only the last pane; readers summing the fields of
// a discarding sink given accumulating panes count records several times.
//
// Windows are named by their start in milliseconds: windows that start
// within the same millisecond (sliding windows with a sub-millisecond
// period) share a hash. When sessions merge, the hash of a session that
// started later than the merged one stays as it was; a TTL clears it.
//
// # Writes and delivery
//
// Each Write sends its records as pipelined commands (1024 per round trip)
// and waits for the replies, so Write fails with the first failing key
// named; Prepare has nothing left to flush. There are no transactions: what
// was written is visible at once and stays if the job fails, and
// correctness under replays comes from the writes being idempotent. With
// TTL, every write sets the key to expire that long after it.
package redis
