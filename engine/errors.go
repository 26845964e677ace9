package engine

import (
	"errors"
	"fmt"
)

// Error is an operating error with a stable code: the code of the HTTP contract
// (docs/http.md). Compare with errors.Is against the sentinels below; the value
// returned may be an *ItemError that wraps one and names the SKU.
type Error struct {
	Code   string // snake_case, as in the HTTP contract
	Status int    // the HTTP status the contract gives this code
}

func (e *Error) Error() string { return e.Code }

// The sentinel errors, one per code of the HTTP contract.
var (
	ErrBadRequest          = &Error{"bad_request", 400}
	ErrUnknownSKU          = &Error{"unknown_sku", 404}
	ErrUnknownRequest      = &Error{"unknown_request", 404}
	ErrInsufficientStock   = &Error{"insufficient_stock", 409}
	ErrSoldOut             = &Error{"sold_out", 409}
	ErrUserLimitExceeded   = &Error{"user_limit_exceeded", 409}
	ErrRequestIDConflict   = &Error{"request_id_conflict", 409}
	ErrNotAReservation     = &Error{"not_a_reservation", 409}
	ErrReservationExpired  = &Error{"reservation_expired", 409}
	ErrReservationCanceled = &Error{"reservation_cancelled", 409}
	ErrAlreadyConfirmed    = &Error{"already_confirmed", 409}
	ErrReturnExceedsSold   = &Error{"return_exceeds_sold", 409}
	ErrTotalBelowCommitted = &Error{"total_below_committed", 409}
	// ErrOverloaded: the request was refused before it reached a SKU; nothing
	// was applied.
	ErrOverloaded = &Error{"overloaded", 503}
	// ErrUnavailable: the engine is closed, its log failed, or it found a bug
	// (see Engine.Err); nothing more is applied or acknowledged. A change
	// whose own commit failed may still be on disk (see Engine).
	ErrUnavailable = &Error{"unavailable", 503}
)

// ItemError is an error about one item of a request: which SKU, and the
// figures that help the caller (available stock, the per-user limit).
type ItemError struct {
	Err       *Error
	SKU       string
	Available int64 // for insufficient_stock and sold_out
	Limit     int64 // for user_limit_exceeded
}

func (e *ItemError) Error() string {
	switch e.Err {
	case ErrUserLimitExceeded:
		return fmt.Sprintf("%s: sku %s, limit %d per user", e.Err.Code, e.SKU, e.Limit)
	case ErrInsufficientStock, ErrSoldOut:
		return fmt.Sprintf("%s: sku %s, %d available", e.Err.Code, e.SKU, e.Available)
	}
	return fmt.Sprintf("%s: sku %s", e.Err.Code, e.SKU)
}

func (e *ItemError) Unwrap() error { return e.Err }

// badRequest returns an ErrBadRequest with a message for the caller.
func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadRequest}, args...)...)
}

// CodeOf returns the contract's *Error behind err, or nil for an error that
// is not one (a context error, say).
func CodeOf(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
