package feedstore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// syncfsAbove: more files than this are made durable with one syncfs(2)
// of the file system where there is one (a publication writes one manifest
// per file feed); fewer get an fsync each (a part's two objects), which
// does not flush what other writers of the file system have pending.
const syncfsAbove = 16

// syncFiles makes the files paths under root durable, with the directory
// entries leading to them.
func syncFiles(root string, paths []string) error {
	if len(paths) > syncfsAbove {
		if ok, err := syncFS(root); ok {
			return err
		}
	}
	dirs := map[string]bool{root: true}
	for _, p := range paths {
		if err := syncPath(p); err != nil {
			return err
		}
		for d := filepath.Dir(p); d != root && strings.HasPrefix(d, root+string(filepath.Separator)); d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		if err := syncPath(d); err != nil {
			return err
		}
	}
	return nil
}

func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	return nil
}
