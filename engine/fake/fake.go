// Package fake is an engine.Engine for testing the layers above the real
// one: it "generates" a scripted list of chunks, honours max tokens, stop
// strings are not its business, and it records the requests it saw.
package fake

import (
	"context"
	"strings"
	"sync"

	"github.com/qwen3-lora/qwen3-server/engine"
)

// Engine is a scripted engine.
type Engine struct {
	mu       sync.Mutex
	Script   []engine.Chunk // emitted in order for every request
	Err      error          // returned instead of generating, if set
	Model    engine.ModelInfo
	Requests []engine.Request
	closed   bool
	// Block, if non-nil, is waited on before each chunk (tests of
	// cancellation and load).
	Block chan struct{}
	busy  int
}

// New returns a fake whose every request yields the given texts, one token each.
func New(texts ...string) *Engine {
	e := &Engine{Model: engine.ModelInfo{ID: "fake-qwen3", ContextSize: 4096, Parallel: 4, Backend: "fake"}}
	for i, t := range texts {
		e.Script = append(e.Script, engine.Chunk{Token: int32(1000 + i), Text: t})
	}
	return e
}

// Generate implements engine.Engine.
func (e *Engine) Generate(ctx context.Context, req *engine.Request, fn func(engine.Chunk) error) (*engine.Result, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, engine.ErrClosed
	}
	e.Requests = append(e.Requests, *req)
	script, err := e.Script, e.Err
	e.busy++
	e.mu.Unlock()
	defer func() { e.mu.Lock(); e.busy--; e.mu.Unlock() }()
	if err != nil {
		return nil, err
	}
	res := &engine.Result{PromptTokens: len(strings.Fields(req.Prompt)) + len(req.PromptTokens), FinishReason: engine.FinishStop}
	var text strings.Builder
	for i, c := range script {
		if e.Block != nil {
			select {
			case <-e.Block:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := fn(c); err != nil {
			return nil, err
		}
		text.WriteString(c.Text)
		res.CompletionTokens++
		if req.MaxTokens > 0 && i+1 >= req.MaxTokens {
			res.FinishReason = engine.FinishLength
			break
		}
	}
	res.Text = text.String()
	return res, nil
}

// Tokenize splits on spaces and numbers the words (enough for handler tests).
func (e *Engine) Tokenize(text string, _ bool) ([]int32, error) {
	var out []int32
	for i := range strings.Fields(text) {
		out = append(out, int32(i))
	}
	return out, nil
}

// Detokenize implements engine.Engine.
func (e *Engine) Detokenize(tokens []int32) string {
	parts := make([]string, len(tokens))
	for i := range tokens {
		parts[i] = "w"
	}
	return strings.Join(parts, " ")
}

// TokenBytes implements engine.Engine: the word Detokenize writes.
func (e *Engine) TokenBytes(int32) []byte { return []byte("w") }

// Info implements engine.Engine.
func (e *Engine) Info() engine.ModelInfo { return e.Model }

// Stats implements engine.Engine.
func (e *Engine) Stats() engine.Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return engine.Stats{Slots: e.Model.Parallel, BusySlots: e.busy}
}

// Close implements engine.Engine.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	return nil
}

var _ engine.Engine = (*Engine)(nil)
