// Package apptest runs real feedmill processors (internal/app.App) for
// integration tests over internal/testenv: Start builds one from a config
// and runs it until the test ends, Restart stops it and starts a new one on
// the same state dir (like Prometheus's newTestDB), and the helpers that
// tests share wait for it to catch up and read topics back. It is for
// tests only: it fails the test on any error.
package apptest
