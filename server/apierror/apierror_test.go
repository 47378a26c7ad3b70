package apierror

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/qwen3-lora/qwen3-server/batch"
	"github.com/qwen3-lora/qwen3-server/engine"
)

func TestFromMapsEngineErrors(t *testing.T) {
	cases := []struct {
		err        error
		status     int
		typ        string
		retryAfter bool
	}{
		{engine.Invalid("max_tokens", "bad"), http.StatusBadRequest, "invalid_request_error", false},
		{fmt.Errorf("wrapped: %w", engine.ErrOverloaded), http.StatusServiceUnavailable, "server_error", true},
		{engine.ErrClosed, http.StatusServiceUnavailable, "server_error", true},
		{engine.Internal("boom"), http.StatusInternalServerError, "server_error", false},
		{errors.New("plain"), http.StatusInternalServerError, "server_error", false},
		{Unauthorized("no key"), http.StatusUnauthorized, "authentication_error", false},
	}
	for _, c := range cases {
		got := From(c.err)
		if got.Status != c.status || got.Type != c.typ || (got.RetryAfter > 0) != c.retryAfter {
			t.Errorf("%v: got %+v", c.err, got)
		}
	}
	if p := From(engine.Invalid("max_tokens", "bad")).Body().Error.Param; p == nil || *p != "max_tokens" {
		t.Errorf("param lost: %v", p)
	}
}

// The batch store's kinds share the table with the engine's: the same int
// value of the two Kind types must not be confused.
func TestFromMapsBatchErrors(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{&batch.Error{Kind: batch.KindInvalid, Param: "purpose", Message: "bad"}, http.StatusBadRequest, ""},
		{&batch.Error{Kind: batch.KindInvalid, Code: batch.CodeTooManyLines, Message: "lines"}, http.StatusBadRequest, batch.CodeTooManyLines},
		{fmt.Errorf("upload: %w", &batch.Error{Kind: batch.KindTooLarge, Code: batch.CodeFileTooLarge, Message: "big"}), http.StatusRequestEntityTooLarge, batch.CodeFileTooLarge},
		{&batch.Error{Kind: batch.KindTooLarge, Message: "big"}, http.StatusRequestEntityTooLarge, batch.CodeFileTooLarge},
		{&batch.Error{Kind: batch.KindNotFound, Message: "no such file"}, http.StatusNotFound, "not_found"},
		{&batch.Error{Kind: batch.KindConflict, Message: "done"}, http.StatusConflict, "conflict"},
		{batch.ErrClosed, http.StatusServiceUnavailable, "unavailable"},
	}
	for _, c := range cases {
		got := From(c.err)
		var be *batch.Error
		errors.As(c.err, &be)
		if got.Status != c.status || got.Code != c.code || got.Message != be.Message {
			t.Errorf("%v: got %+v, want status %d code %q", c.err, got, c.status, c.code)
		}
	}
	if p := From(&batch.Error{Kind: batch.KindInvalid, Param: "endpoint", Message: "x"}).Body().Error.Param; p == nil || *p != "endpoint" {
		t.Errorf("param lost: %v", p)
	}
}
