// Package apierror is the one place where errors become HTTP answers in
// OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
package apierror

import (
	"errors"
	"net/http"

	"github.com/qwen3-lora/qwen3-server/batch"
	"github.com/qwen3-lora/qwen3-server/engine"
)

// Body is OpenAI's error envelope.
type Body struct {
	Error Detail `json:"error"`
}

// Detail is the error object.
type Detail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// Error is an API error with its HTTP status.
type Error struct {
	Status     int
	Type       string
	Code       string
	Param      string
	Message    string
	RetryAfter int // seconds; sent as Retry-After when > 0
}

func (e *Error) Error() string { return e.Message }

// Body renders the error for the wire.
func (e *Error) Body() Body {
	d := Detail{Message: e.Message, Type: e.Type}
	if e.Param != "" {
		d.Param = &e.Param
	}
	if e.Code != "" {
		d.Code = &e.Code
	}
	return Body{Error: d}
}

// Constructors for the errors handlers raise themselves.
func BadRequest(param, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Message: msg}
}

func NotFound(code, msg string) *Error {
	return &Error{Status: http.StatusNotFound, Type: "invalid_request_error", Code: code, Message: msg}
}

func Unauthorized(msg string) *Error {
	return &Error{Status: http.StatusUnauthorized, Type: "authentication_error", Code: "invalid_api_key", Message: msg}
}

// Forbidden: the caller is known but may not do this (an API key on an
// operator route).
func Forbidden(code, msg string) *Error {
	return &Error{Status: http.StatusForbidden, Type: "permission_error", Code: code, Message: msg}
}

// ShuttingDown answers requests that arrive while the server drains.
func ShuttingDown() *Error {
	return &Error{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "shutting_down", Message: "the server is shutting down; retry the request (another replica will take it)", RetryAfter: 1}
}

func Loading() *Error {
	return &Error{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "model_loading", Message: "the model is still loading", RetryAfter: 5}
}

// kindAnswer is how one engine error kind goes on the wire.
type kindAnswer struct {
	status     int
	typ, code  string
	retryAfter int // seconds
}

// kinds is the one table from typed error kinds (engine.Kind and
// batch.Kind, the two layers below HTTP) to HTTP answers; a kind missing
// here is answered as an internal error.
var kinds = map[any]kindAnswer{
	engine.KindInvalid:     {http.StatusBadRequest, "invalid_request_error", "", 0},
	engine.KindOverloaded:  {http.StatusServiceUnavailable, "server_error", "overloaded", 1},
	engine.KindUnavailable: {http.StatusServiceUnavailable, "server_error", "unavailable", 5},
	engine.KindInternal:    {http.StatusInternalServerError, "server_error", "", 0},
	engine.KindNotFound:    {http.StatusNotFound, "invalid_request_error", "not_found", 0},
	engine.KindForbidden:   {http.StatusForbidden, "permission_error", "forbidden", 0},
	engine.KindConflict:    {http.StatusConflict, "invalid_request_error", "conflict", 0},

	batch.KindInvalid:     {http.StatusBadRequest, "invalid_request_error", "", 0},
	batch.KindNotFound:    {http.StatusNotFound, "invalid_request_error", "not_found", 0},
	batch.KindTooLarge:    {http.StatusRequestEntityTooLarge, "invalid_request_error", batch.CodeFileTooLarge, 0},
	batch.KindConflict:    {http.StatusConflict, "invalid_request_error", "conflict", 0},
	batch.KindUnavailable: {http.StatusServiceUnavailable, "server_error", "unavailable", 5},
}

// answer is the table's entry for kind k (an internal error when absent)
// as an API error; code, when set, is the typed error's own.
func answer(k any, code, param, msg string) *Error {
	a, ok := kinds[k]
	if !ok {
		a = kinds[engine.KindInternal]
	}
	if code == "" {
		code = a.code
	}
	return &Error{Status: a.status, Type: a.typ, Code: code, RetryAfter: a.retryAfter, Message: msg, Param: param}
}

// From maps any error to an API error: typed errors keep their meaning,
// anything else is an internal error.
func From(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var ee *engine.Error
	if errors.As(err, &ee) {
		return answer(ee.Kind, "", ee.Param, ee.Message)
	}
	var be *batch.Error
	if errors.As(err, &be) {
		return answer(be.Kind, be.Code, be.Param, be.Message)
	}
	return &Error{Status: http.StatusInternalServerError, Type: "server_error", Message: "internal error: " + err.Error()}
}
