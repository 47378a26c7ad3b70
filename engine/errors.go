package engine

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind classifies engine errors; the server maps each to an HTTP status and
// an OpenAI error type in one place (server/apierror).
type Kind int

const (
	KindInvalid     Kind = iota + 1 // the request itself is wrong: 400
	KindOverloaded                  // queue full: 503 with Retry-After
	KindUnavailable                 // engine closed or loading: 503
	KindInternal                    // llama.cpp failed: 500
	KindNotFound                    // an unknown model or adapter: 404
	KindForbidden                   // a path outside the allowed folders: 403
	KindConflict                    // a name already in use: 409
)

// Error is a typed engine error.
type Error struct {
	Kind    Kind
	Param   string // request field at fault, if any
	Message string
}

func (e *Error) Error() string { return e.Message }

// HTTPStatus is the status the server answers with.
func (e *Error) HTTPStatus() int {
	switch e.Kind {
	case KindInvalid:
		return http.StatusBadRequest
	case KindOverloaded, KindUnavailable:
		return http.StatusServiceUnavailable
	case KindNotFound:
		return http.StatusNotFound
	case KindForbidden:
		return http.StatusForbidden
	case KindConflict:
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// ErrOverloaded is returned when every slot is busy and the queue is full.
var ErrOverloaded = &Error{Kind: KindOverloaded, Message: "server overloaded: all slots busy and the request queue is full; retry later"}

// ErrClosed is returned for requests to, or still running in, a closed engine.
var ErrClosed = &Error{Kind: KindUnavailable, Message: "engine is shutting down"}

// Invalid builds a KindInvalid error.
func Invalid(param, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Param: param, Message: fmt.Sprintf(format, args...)}
}

// Internal builds a KindInternal error.
func Internal(format string, args ...any) *Error {
	return &Error{Kind: KindInternal, Message: fmt.Sprintf(format, args...)}
}

// IsKind reports whether err is an engine error of kind k.
func IsKind(err error, k Kind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == k
}

// Errorf builds an error of kind k.
func Errorf(k Kind, param, format string, args ...any) *Error {
	return &Error{Kind: k, Param: param, Message: fmt.Sprintf(format, args...)}
}
