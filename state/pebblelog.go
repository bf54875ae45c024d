package state

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// ErrFailed marks the error of a store on which Pebble reported a fatal
// error (a commit or MANIFEST write that failed, typically a full disk).
// Every later commit returns it; the owner stops and restarts the process.
var ErrFailed = errors.New("state store failed")

// failure records the first fatal error Pebble reported.
type failure struct {
	once sync.Once
	done chan struct{}
	err  error
}

func newFailure() *failure { return &failure{done: make(chan struct{})} }

// fail records err (the first one wins) and closes done.
func (f *failure) fail(err error) {
	f.once.Do(func() {
		f.err = fmt.Errorf("%w: %w", ErrFailed, err)
		close(f.done)
	})
}

// get returns the recorded error or nil.
func (f *failure) get() error {
	select {
	case <-f.done:
		return f.err
	default:
		return nil
	}
}

// Failed is closed when Pebble reports a fatal error; Err then returns
// it. The owner (app.Run) waits on it to shut down. Safe for concurrent use.
func (s *Store) Failed() <-chan struct{} { return s.failure.done }

// Err returns the fatal error Pebble reported, wrapping ErrFailed, or nil.
// Safe for concurrent use.
func (s *Store) Err() error { return s.failure.get() }

// Pebble log rate limit: at most logBurst messages per logWindow for each
// of Infof and Errorf; the next message let through carries the count of
// the ones dropped.
const (
	logBurst  = 10
	logWindow = 10 * time.Second
)

// logLimiter lets at most burst messages through per window. Safe for
// concurrent use.
type logLimiter struct {
	now    func() time.Time
	burst  int
	window time.Duration

	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

// allow reports whether a message may be logged now and, if so, how many
// were dropped since the last one let through.
func (l *logLimiter) allow() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.start.IsZero() || now.Sub(l.start) >= l.window {
		l.start, l.n = now, 0
	}
	if l.n >= l.burst {
		l.suppressed++
		return false, 0
	}
	l.n++
	dropped := l.suppressed
	l.suppressed = 0
	return true, dropped
}

// pebbleLogger is Pebble's Logger. Infof (at debug level) and Errorf go
// through rate limiters: a failing disk makes Pebble retry and log in a
// loop. Fatalf does not exit the process: it records the error on the
// store (Store.Failed, Store.Err), after which commits fail and the owner
// shuts down cleanly.
type pebbleLogger struct {
	logger *zap.Logger
	info   *logLimiter
	errs   *logLimiter
	fail   func(error)
}

func newPebbleLogger(logger *zap.Logger, now func() time.Time, fail func(error)) *pebbleLogger {
	if now == nil {
		now = time.Now
	}
	return &pebbleLogger{
		logger: logger,
		info:   &logLimiter{now: now, burst: logBurst, window: logWindow},
		errs:   &logLimiter{now: now, burst: logBurst, window: logWindow},
		fail:   fail,
	}
}

func (l *pebbleLogger) log(lim *logLimiter, level zapcore.Level, msg string) {
	if !l.logger.Core().Enabled(level) {
		return
	}
	ok, dropped := lim.allow()
	if !ok {
		return
	}
	if ce := l.logger.Check(level, msg); ce != nil {
		if dropped > 0 {
			ce.Write(zap.Int("suppressed", dropped))
		} else {
			ce.Write()
		}
	}
}

// Infof logs at debug level, rate-limited.
func (l *pebbleLogger) Infof(format string, args ...any) {
	if !l.logger.Core().Enabled(zapcore.DebugLevel) {
		return
	}
	l.log(l.info, zapcore.DebugLevel, fmt.Sprintf(format, args...))
}

// Errorf logs at error level, rate-limited.
func (l *pebbleLogger) Errorf(format string, args ...any) {
	l.log(l.errs, zapcore.ErrorLevel, fmt.Sprintf(format, args...))
}

// Fatalf records the error on the store and logs it (rate-limited); it
// returns instead of exiting.
func (l *pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.fail(errors.New(msg))
	l.log(l.errs, zapcore.ErrorLevel, "fatal: "+msg+"; the store stops accepting commits")
}
