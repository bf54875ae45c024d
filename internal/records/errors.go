package records

import "errors"

// RejectError says a record cannot be used because of the record itself: it
// cannot be decoded or it is invalid. The caller routes the original bytes
// to the rejects topic with Error() as the reason and goes on; retrying
// would give the same answer. Any other error from this package (registry
// unreachable, context ended) is not the record's fault and must be retried.
type RejectError struct {
	// Reason is a short, stable, human-readable cause, e.g.
	// "unknown schema id 42" or "negative price_minor".
	Reason string
	// Err is the underlying detail, or nil.
	Err error
}

// Error returns Reason, followed by ": " and Err when Err is set.
func (e *RejectError) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *RejectError) Unwrap() error { return e.Err }

// IsReject reports whether err is or wraps a *RejectError and returns it.
// A *RejectError may be shared between calls (cached per schema id): treat
// it as read-only.
func IsReject(err error) (*RejectError, bool) {
	var re *RejectError
	if errors.As(err, &re) {
		return re, true
	}
	return nil, false
}

func reject(reason string, err error) *RejectError {
	return &RejectError{Reason: reason, Err: err}
}
