package apierror

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

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
