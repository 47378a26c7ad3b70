package eval

import (
	"context"
	"fmt"

	"github.com/qwen3-lora/qwen3-server/adapters"
	"github.com/qwen3-lora/qwen3-server/conversation"
	"github.com/qwen3-lora/qwen3-server/conversation/qwen3"
	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/sampling"
)

// Request are the generation settings every item runs with.
type Request struct {
	// Sampling are explicit sampling fields: they win over adapter
	// manifests and the mode presets, as a request's do (Greedy is the
	// default). Empty: the mode's preset.
	Sampling sampling.Params
	// MaxTokens caps each answer, reasoning included (0: the context).
	MaxTokens int
	// ThinkingBudget caps the reasoning tokens (nil: the server's default).
	ThinkingBudget *int
	// IgnoreEOS runs every answer to MaxTokens (engine only): the
	// throughput benchmark compares eval with the engine's own decode loop
	// on the same work.
	IgnoreEOS bool
}

// Greedy is temperature 0, as LLaMA-Factory's predict_with_generate is
// usually run (do_sample false).
func Greedy() sampling.Params {
	t := float32(0)
	return sampling.Params{Temperature: &t}
}

// chatRequest is the item as the conversation layer's request.
func (r Request) chatRequest(it *Item, thinking bool) *conversation.Request {
	req := &conversation.Request{Messages: it.Messages, Thinking: qwen3.ThinkingSwitch{EnableThinking: &thinking},
		Sampling: r.Sampling, ThinkingBudget: r.ThinkingBudget}
	if r.MaxTokens > 0 {
		mt := r.MaxTokens
		req.MaxTokens = &mt
	}
	return req
}

// EngineModel is one evaluated model on the engine: the base (no adapters)
// or an adapter with its manifest.
type EngineModel struct {
	Adapters []engine.AdapterUse
	Manifest *adapters.Manifest
}

// EngineGenerator runs items on an engine in this process, planned exactly
// as the server plans a chat completion (conversation.Planner: template,
// thinking switch, manifest, presets, thinking budget) and parsed by the
// server's reasoning parser.
type EngineGenerator struct {
	Engine  engine.Engine
	Planner *conversation.Planner
	Models  map[string]EngineModel
	Request Request
}

// Concurrency keeps every slot busy: one item per slot, plus one waiting
// per slot (as far as the queue takes them) so that a slot that frees gets
// its next item without a round trip.
func (g *EngineGenerator) Concurrency() int {
	st := g.Engine.Stats()
	return st.Slots + min(st.Slots, st.QueueSize)
}

func (g *EngineGenerator) Generate(ctx context.Context, model string, it *Item, thinking bool) (*Output, error) {
	m, ok := g.Models[model]
	if !ok {
		return nil, fmt.Errorf("unknown model %q", model)
	}
	plan, err := g.Planner.Chat(g.Engine, g.Request.chatRequest(it, thinking), m.Manifest)
	if err != nil {
		return nil, err
	}
	plan.Request.Adapters = m.Adapters
	plan.Request.IgnoreEOS = g.Request.IgnoreEOS
	out := plan.NewOutput()
	res, err := g.Engine.Generate(ctx, &plan.Request, func(ch engine.Chunk) error {
		out.Feed(ch)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out.Finish()
	reasoning, _ := out.Reasoning()
	return &Output{Reasoning: reasoning, Answer: out.Answer(), PromptTokens: res.PromptTokens,
		CompletionTokens: res.CompletionTokens, ReasoningTokens: res.ReasoningTokens, FinishReason: out.FinishReason(res)}, nil
}
