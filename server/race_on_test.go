//go:build race

package server

// raceEnabled: the race detector changes allocation counts (sync.Pool drops
// items at random), so allocation limits are only asserted without it.
const raceEnabled = true
