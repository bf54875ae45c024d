//go:build !linux

package feedstore

import (
	"fmt"
	"os"
	"path/filepath"
)

// syncFiles fsyncs every file of dirs and the dirs themselves.
func syncFiles(_ string, dirs []string) error {
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("sync feed files: %w", err)
		}
		for _, e := range entries {
			f, err := os.OpenFile(filepath.Join(dir, e.Name()), os.O_RDWR, 0)
			if err != nil {
				return fmt.Errorf("sync feed files: %w", err)
			}
			err = f.Sync()
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("sync feed files: %w", err)
			}
		}
		if err := syncDir(dir); err != nil {
			return err
		}
	}
	return nil
}
