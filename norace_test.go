//go:build !race

package ktls

// raceEnabled: the race detector is on (it makes allocations of its own).
const raceEnabled = false
