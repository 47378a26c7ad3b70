// Package fake is an engine.Engine for testing the layers above the real
// one: it "generates" a scripted list of chunks, honours max tokens, stop
// strings are not its business, and it records the requests it saw. With
// MaxRunning it has slots and a queue, and its Stats report them (running
// and waiting adapters, KV cells) as the real scheduler's do.
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
	// MaxRunning, when > 0, is the number of slots: requests beyond it
	// wait in a queue (Stats' QueueDepth, WaitingAdapters) until one ends.
	MaxRunning int
	busy       int
	running    []*engine.Request
	waiting    []*engine.Request
	freed      chan struct{} // closed and replaced when a slot frees
	// kvUsed counts, per running request, its prompt words and chunks so far.
	kvUsed map[*engine.Request]int
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
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := e.take(ctx, req); err != nil {
		return nil, err
	}
	defer e.release(req)
	res := &engine.Result{PromptTokens: len(strings.Fields(req.Prompt)) + len(req.PromptTokens), FinishReason: engine.FinishStop}
	e.setKV(req, res.PromptTokens)
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
		e.setKV(req, res.PromptTokens+res.CompletionTokens)
		if req.MaxTokens > 0 && i+1 >= req.MaxTokens {
			res.FinishReason = engine.FinishLength
			break
		}
	}
	res.Text = text.String()
	return res, nil
}

// take waits for a slot (MaxRunning) and marks req running.
func (e *Engine) take(ctx context.Context, req *engine.Request) error {
	e.mu.Lock()
	queued := false
	for e.MaxRunning > 0 && e.busy >= e.MaxRunning {
		if !queued {
			e.waiting, queued = append(e.waiting, req), true
		}
		if e.freed == nil {
			e.freed = make(chan struct{})
		}
		freed := e.freed
		e.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			e.mu.Lock()
			e.waiting = remove(e.waiting, req)
			e.mu.Unlock()
			return ctx.Err()
		}
		e.mu.Lock()
	}
	e.waiting = remove(e.waiting, req)
	e.running = append(e.running, req)
	e.busy++
	e.mu.Unlock()
	return nil
}

func (e *Engine) release(req *engine.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.busy--
	e.running = remove(e.running, req)
	delete(e.kvUsed, req)
	if e.freed != nil {
		close(e.freed)
		e.freed = nil
	}
}

func (e *Engine) setKV(req *engine.Request, n int) {
	e.mu.Lock()
	if e.kvUsed == nil {
		e.kvUsed = map[*engine.Request]int{}
	}
	e.kvUsed[req] = n
	e.mu.Unlock()
}

func remove(list []*engine.Request, req *engine.Request) []*engine.Request {
	for i, r := range list {
		if r == req {
			return append(list[:i:i], list[i+1:]...)
		}
	}
	return list
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
	st := engine.Stats{Slots: e.Model.Parallel, BusySlots: e.busy, QueueDepth: len(e.waiting), KVCells: e.Model.ContextSize * e.Model.Parallel}
	for _, r := range e.running {
		st.RunningAdapters = engine.AddAdapters(st.RunningAdapters, r.Adapters)
		st.KVCellsUsed += e.kvUsed[r]
	}
	for _, r := range e.waiting {
		st.WaitingAdapters = engine.AddAdapters(st.WaitingAdapters, r.Adapters)
	}
	return st
}

// Close implements engine.Engine.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	return nil
}

var _ engine.Engine = (*Engine)(nil)
