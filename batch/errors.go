package batch

import (
	"errors"
	"fmt"
)

// Kind classifies the store's errors. batch knows nothing of HTTP: the
// server maps each kind to a status once (KindTooLarge is 413, KindNotFound
// 404, KindInvalid 400, ...).
type Kind int

const (
	KindInvalid     Kind = iota + 1 // the request itself is wrong
	KindNotFound                    // no such object for this owner (another owner's objects are not found either)
	KindTooLarge                    // an upload over Config.MaxFileBytes
	KindConflict                    // the object's state forbids the operation (cancel a completed batch)
	KindUnavailable                 // the store is closed
)

// Error is a typed batch error. Param is the wire parameter at fault and
// Code OpenAI's error code, where there is one.
type Error struct {
	Kind    Kind
	Param   string
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Codes the server may want to tell apart without parsing messages.
const (
	CodeFileTooLarge = "file_too_large"
	CodeTooManyLines = "too_many_lines"
)

// ErrClosed is returned by every call on a closed store.
var ErrClosed = &Error{Kind: KindUnavailable, Message: "the batch store is closed"}

// ErrRetryLater is what an Executor wraps (fmt.Errorf("%w: ...",
// ErrRetryLater)) when a line could not run now but should later (the engine
// is overloaded or shutting down): the line stays pending, nothing is
// recorded for it, and the runner pauses dispatch for one poll interval.
var ErrRetryLater = errors.New("batch: retry the line later")

func errorf(k Kind, param, code, format string, args ...any) *Error {
	return &Error{Kind: k, Param: param, Code: code, Message: fmt.Sprintf(format, args...)}
}
