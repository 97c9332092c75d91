package stele

import (
	"errors"
	"fmt"
)

// Kind classifies an error so that every layer can answer it the same way.
// The set is closed: the HTTP layer maps each kind to exactly one status.
type Kind int

const (
	KindInternal        Kind = iota // a bug or an unexpected failure; details stay in server logs
	KindInvalid                     // the request is malformed or breaks a rule (400)
	KindUnauthenticated             // no valid credential (401)
	KindForbidden                   // a valid credential without the right scope or role (403)
	KindNotFound                    // nothing there, or nothing the caller may see (404)
	KindConflict                    // the request contradicts stored state (409)
	KindTooLarge                    // the request exceeds a size limit (413)
	KindUnsupported                 // the request uses a media type or encoding we do not take (415)
	KindRateLimited                 // the caller sent too much, too fast (429)
	KindPushback                    // the server is saturated; retry later (503)
	KindUnavailable                 // the server cannot make the operation durable right now (503)
)

var kindNames = map[Kind]string{
	KindInternal:        "internal",
	KindInvalid:         "invalid",
	KindUnauthenticated: "unauthenticated",
	KindForbidden:       "forbidden",
	KindNotFound:        "not_found",
	KindConflict:        "conflict",
	KindTooLarge:        "too_large",
	KindUnsupported:     "unsupported_media_type",
	KindRateLimited:     "rate_limited",
	KindPushback:        "overloaded",
	KindUnavailable:     "unavailable",
}

// String returns the stable, machine-readable name of k, used as the "code"
// of JSON error responses.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "internal"
}

// Error is the one error type that crosses package boundaries with meaning.
// Message is safe to show to the caller; it never holds secrets. Field names
// the offending input (a JSON path such as "events[3].actor.type", or a query
// parameter) when there is one.
type Error struct {
	Kind    Kind
	Message string
	Field   string
	// RetryAfter, in seconds, accompanies KindRateLimited and KindPushback.
	RetryAfter int
	// Err is the underlying cause, for logs and errors.Is; never shown to callers.
	Err error
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of kind k with a formatted, caller-safe message.
func Errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns a KindInvalid error naming field.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// KindOf reports the kind of err: the kind of the first *Error in its chain,
// or KindInternal when there is none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// Sentinel errors that stores and the write path return; they are *Error
// values so that KindOf classifies them without extra wiring.
var (
	// ErrNotFound: the workspace, event, key or checkpoint does not exist
	// (or is not visible to the caller; the two are never distinguished).
	ErrNotFound = &Error{Kind: KindNotFound, Message: "not found"}
	// ErrConflict: a compare-and-swap lost (the stored state moved on).
	ErrConflict = &Error{Kind: KindConflict, Message: "conflict with stored state"}
	// ErrUnavailable: the store cannot accept writes; nothing was acknowledged.
	ErrUnavailable = &Error{Kind: KindUnavailable, Message: "the log cannot accept writes right now", RetryAfter: 1}
)

// ErrIntegrity reports that stored data contradicts the log's own records:
// a row the service did not write, a hash that does not match, a tree that
// does not lead to the signed root. It is never retried: the affected log stops
// accepting appends until an operator has looked.
type ErrIntegrity struct {
	Workspace string
	Seq       int64 // first position concerned, or -1
	Check     string
	Detail    string
}

func (e *ErrIntegrity) Error() string {
	at := ""
	if e.Seq >= 0 {
		at = fmt.Sprintf(" at seq %d", e.Seq)
	}
	return fmt.Sprintf("integrity failure in workspace %q%s (%s): %s", e.Workspace, at, e.Check, e.Detail)
}
