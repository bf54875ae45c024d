//go:build linux

package feedstore

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// syncFS makes everything written to root's file system durable with one
// syncfs(2).
func syncFS(root string) (bool, error) {
	d, err := os.Open(root)
	if err != nil {
		return true, fmt.Errorf("sync feed store %s: %w", root, err)
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return true, fmt.Errorf("sync feed store %s: %w", root, err)
	}
	return true, nil
}
