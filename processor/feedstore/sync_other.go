//go:build !linux

package feedstore

// syncFS: no syncfs(2) here; syncFiles fsyncs each file.
func syncFS(string) (bool, error) { return false, nil }
