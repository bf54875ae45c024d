//go:build !linux && !darwin

package app

import "errors"

// statfsFree is not implemented here: set state.min_free_bytes to 0.
func statfsFree(string) (uint64, error) {
	return 0, errors.New("free space check not supported on this system; set state.min_free_bytes: 0")
}
