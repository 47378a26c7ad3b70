package server

// What every API handler shares: the engine and the decoded body at the
// start, ids, running many generations of one request at once, and the
// wire parameter an engine error is about.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/server/apierror"
)

// decodeJSON reads the body with clear errors for the usual mistakes.
func decodeJSON(c *gin.Context, dst any) error {
	dec := json.NewDecoder(c.Request.Body)
	if err := dec.Decode(dst); err != nil {
		var mbe *http.MaxBytesError
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return &apierror.Error{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: "body_too_large",
				Message: fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
		case errors.As(err, &ute):
			return apierror.BadRequest(ute.Field, fmt.Sprintf("%s: expected %s, got JSON %s", ute.Field, ute.Type, ute.Value))
		}
		return apierror.BadRequest("", "malformed JSON body: "+err.Error())
	}
	return nil
}

// begin is every API handler's start: the engine (503 while the model
// loads) and the decoded JSON body (400/413 on bad input). ok is false when
// an error has been answered.
func (s *Server) begin(c *gin.Context, body any) (engine.Engine, bool) {
	e := s.engine()
	if e == nil {
		s.fail(c, apierror.Loading())
		return nil, false
	}
	if body != nil {
		if err := decodeJSON(c, body); err != nil {
			s.fail(c, err)
			return nil, false
		}
	}
	return e, true
}

func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// runAll runs fn(ctx, i) for every i in [0, n), at most limit at a time
// (a batch larger than the engine's slots waits its turn here instead of
// overflowing the engine's queue). The first failure cancels the rest; the
// error returned is that failure rather than the cancellations it caused.
func runAll(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, n)
	sem := make(chan struct{}, max(1, limit))
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			if errs[i] = fn(ctx, i); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	return firstError(errs)
}

// firstError prefers a real failure over the cancellations it caused.
func firstError(errs []error) error {
	var cancelled error
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, context.Canceled):
			cancelled = err
		default:
			return err
		}
	}
	return cancelled
}

// fieldParams names the wire parameter of each engine.Request field; the
// prompt's name depends on the endpoint, so it is passed in.
var fieldParams = map[engine.Field]string{
	engine.FieldMaxTokens:   "max_tokens",
	engine.FieldTopLogprobs: "top_logprobs",
	engine.FieldJSONSchema:  "response_format",
	engine.FieldGrammar:     "tools", // the only grammar a client sends is the tool-call one
	engine.FieldAdapters:    "lora",
}

// attachParam gives an engine error about a Request field the wire
// parameter the client sent it in; prompt is the prompt's parameter.
func attachParam(err error, prompt string) error {
	var ee *engine.Error
	if !errors.As(err, &ee) || ee.Param != "" || ee.Field == engine.FieldNone {
		return err
	}
	cp := *ee
	cp.Param = fieldParams[ee.Field]
	if ee.Field == engine.FieldPrompt {
		cp.Param = prompt
	}
	return &cp
}
