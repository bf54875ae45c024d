package app

import (
	"fmt"
	"os"
	"strconv"
)

// DiskSpaceError is returned by New when the state directory's file
// system has less free space than state.min_free_bytes: Pebble on a full
// disk cannot flush or commit, so the processor refuses to start.
type DiskSpaceError struct {
	Dir          string
	FreeBytes    uint64
	MinFreeBytes int64
}

func (e *DiskSpaceError) Error() string {
	return fmt.Sprintf("state dir %q has %s free, needs at least %s (state.min_free_bytes): free some space, or lower state.min_free_bytes (0 disables the check)",
		e.Dir, bytesText(e.FreeBytes), bytesText(uint64(e.MinFreeBytes)))
}

// bytesText prints n in MiB with the exact count: "312.0 MiB (327155712 bytes)".
func bytesText(n uint64) string {
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB (" + strconv.FormatUint(n, 10) + " bytes)"
}

// checkFreeSpace creates dir and returns a *DiskSpaceError if its file
// system has less than minFree bytes available to this user. minFree 0
// disables the check. freeBytes is statfs (injectable for tests).
func checkFreeSpace(dir string, minFree int64, freeBytes func(dir string) (uint64, error)) error {
	if minFree <= 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	free, err := freeBytes(dir)
	if err != nil {
		return fmt.Errorf("free space of state dir %q: %w", dir, err)
	}
	if free < uint64(minFree) {
		return &DiskSpaceError{Dir: dir, FreeBytes: free, MinFreeBytes: minFree}
	}
	return nil
}
