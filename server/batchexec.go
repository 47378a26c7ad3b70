package server

// The batch Executor and ModelCheck. A line runs through the same gin
// handlers as an HTTP request (chatCompletions, completions), served
// in-process by a router of its own: no socket, no second implementation
// of planning and answering, and the answer is byte for byte what the
// endpoint would have sent. That router has no auth, body limit or access
// log (the batch was authorized when it was created; a 50,000-line batch
// would flood the log), and its requests carry a context mark that gives
// their generations engine.PriorityLow.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/gin-gonic/gin"

	"github.com/qwen3-lora/qwen3-server/batch"
	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/server/apierror"
)

type batchLineKey struct{}

// priorityOf is the engine priority of a request: low for a batch line.
// Only the Executor sets the mark; a client cannot.
func priorityOf(ctx context.Context) engine.Priority {
	if ctx.Value(batchLineKey{}) != nil {
		return engine.PriorityLow
	}
	return engine.PriorityInteractive
}

// lineRoutes is the router batch lines run through.
func (s *Server) lineRoutes() http.Handler {
	r := gin.New()
	r.Use(gin.Recovery(), s.requestID())
	r.POST(batch.EndpointChatCompletions, s.chatCompletions)
	r.POST(batch.EndpointCompletions, s.completions)
	return r
}

// Executor runs batch lines through this server's handlers.
func (s *Server) Executor() batch.Executor { return lineExecutor{s} }

type lineExecutor struct{ s *Server }

// Execute implements batch.Executor. A 503 (the engine is overloaded,
// loading or closing) is not an answer but "run later"; so is anything
// once ctx is done (the line stays pending).
func (x lineExecutor) Execute(ctx context.Context, endpoint string, body json.RawMessage) (int, json.RawMessage, error) {
	var probe struct {
		Stream bool `json:"stream"`
	}
	if json.Unmarshal(body, &probe) == nil && probe.Stream {
		return errorAnswer(apierror.BadRequest("stream", "batch lines cannot stream: remove \"stream\": true"))
	}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, batchLineKey{}, true), http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if id := batch.RequestID(ctx); id != "" {
		req.Header.Set("X-Request-Id", id)
	}
	rec := httptest.NewRecorder()
	x.s.lines.ServeHTTP(rec, req)
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	if rec.Code == http.StatusServiceUnavailable {
		return 0, nil, fmt.Errorf("%w: %s", batch.ErrRetryLater, bytes.TrimSpace(rec.Body.Bytes()))
	}
	out := bytes.TrimSpace(rec.Body.Bytes())
	if !json.Valid(out) {
		return 0, nil, fmt.Errorf("the %s handler answered %d with a body that is not JSON", endpoint, rec.Code)
	}
	return rec.Code, out, nil
}

func errorAnswer(e *apierror.Error) (int, json.RawMessage, error) {
	b, err := json.Marshal(e.Body())
	return e.Status, b, err
}

// ModelCheck validates a line's model with the resolution requests use
// (the base id, an adapter name, or "base:adapter"). Start the runner
// after SetEngine: without an engine every model is refused.
func (s *Server) ModelCheck() batch.ModelCheck {
	return func(model string) error {
		e := s.engine()
		if e == nil {
			return fmt.Errorf("the model is still loading")
		}
		_, _, release, _, err := s.resolveModel(e, model, nil)
		if err != nil {
			return err
		}
		release()
		return nil
	}
}
