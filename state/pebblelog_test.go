package state

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestPebbleLoggerRateLimit(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	now := time.Unix(1_700_000_000, 0)
	l := newPebbleLogger(zap.New(core), func() time.Time { return now }, func(error) {})
	for i := range 100 {
		l.Errorf("background error: %d", i)
		l.Infof("flushed %d", i)
	}
	if got := logs.FilterLevelExact(zapcore.ErrorLevel).Len(); got != logBurst {
		t.Fatalf("%d error entries in one window, want %d", got, logBurst)
	}
	if got := logs.FilterLevelExact(zapcore.DebugLevel).Len(); got != logBurst {
		t.Fatalf("%d info entries in one window, want %d", got, logBurst)
	}
	now = now.Add(logWindow)
	logs.TakeAll()
	l.Errorf("background error: again")
	entries := logs.TakeAll()
	if len(entries) != 1 || entries[0].Message != "background error: again" {
		t.Fatalf("next window: %v", entries)
	}
	if got := entries[0].ContextMap()["suppressed"]; got != int64(100-logBurst) {
		t.Fatalf("suppressed = %v, want %d", got, 100-logBurst)
	}
}

func TestPebbleLoggerFatalfDoesNotExit(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	f := newFailure()
	l := newPebbleLogger(zap.New(core), nil, f.fail)
	l.Fatalf("pebble: fatal commit error: %v", syscall.ENOSPC)
	l.Fatalf("pebble: a second one")
	// Still running: Fatalf returned.
	select {
	case <-f.done:
	default:
		t.Fatal("failure not recorded")
	}
	err := f.get()
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "fatal commit error: no space left on device") {
		t.Fatalf("err = %v", err)
	}
	if logs.FilterMessageSnippet("fatal commit error").Len() != 1 {
		t.Fatalf("entries %v", logs.All())
	}
}

// TestCommitAfterFatalWriteFails drives Pebble into its fatal commit path
// with a WAL write that fails (a full disk): the commit returns an error
// wrapping ErrFailed, the store reports it, later commits fail too, and
// the test process is still alive.
func TestCommitAfterFatalWriteFails(t *testing.T) {
	toggle := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if strings.HasSuffix(op.Path, ".log") && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return syscall.ENOSPC
		}
		return nil
	})}
	fs := errorfs.Wrap(vfs.NewMem(), toggle)
	s, err := Open("db", nil, Options{CacheBytes: 1 << 20, MemTableBytes: 1 << 20, FS: fs}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	commit := func() error {
		b := s.NewBatch()
		defer b.Close()
		if err := b.SetOffset("offers", 0, 1); err != nil {
			t.Fatal(err)
		}
		return b.Commit(true)
	}
	if err := commit(); err != nil {
		t.Fatalf("commit before the failure: %v", err)
	}
	toggle.On()
	done := make(chan error, 1)
	go func() { done <- commit() }()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("commit on a failing disk did not return")
	}
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("commit on a failing disk: %v, want ErrFailed", err)
	}
	select {
	case <-s.Failed():
	default:
		t.Fatal("Failed not closed")
	}
	if err := commit(); !errors.Is(err, ErrFailed) {
		t.Fatalf("later commit: %v, want ErrFailed", err)
	}
}
