package conversation

import (
	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/sampling"
)

// Raw completions (/v1/completions) have no conversation to render, but
// they share the chat's sampling precedence and parameter checks, so they
// are planned here too.

// DefaultCompletionTokens follows OpenAI's (and vLLM's) /v1/completions
// default max_tokens.
const DefaultCompletionTokens = 16

// MaxPrompts is the most prompts one completions request may batch.
const MaxPrompts = 256

// CompletionRequest is a raw completions request: prompts as text or as
// token ids (both may be given), run one choice each.
type CompletionRequest struct {
	Prompts      []string
	PromptTokens [][]int32
	Sampling     sampling.Params
	N            *int
	MaxTokens    *int
	Stop         []string
	// Logprobs is the legacy integer: alternatives per token (nil: none).
	Logprobs *int
	// Echo puts the prompt (and its logprobs) before the completion.
	Echo      bool
	IgnoreEOS bool
}

// Completion plans a raw completions request: one engine request per
// prompt, in prompt order, and the sampling parameters they share.
func (p *Planner) Completion(req *CompletionRequest) ([]engine.Request, sampling.Params, error) {
	var none sampling.Params
	count := len(req.Prompts) + len(req.PromptTokens)
	if count == 0 {
		return nil, none, engine.Invalid("prompt", "prompt is required: a string or an array of strings")
	}
	if count > MaxPrompts {
		return nil, none, engine.Invalid("prompt", "at most %d prompts per request", MaxPrompts)
	}
	if req.N != nil && *req.N != 1 {
		return nil, none, engine.Invalid("n", "only n=1 is supported for completions; send the prompt several times in the prompt array")
	}
	if req.Logprobs != nil {
		if err := CheckTopLogprobs("logprobs", *req.Logprobs); err != nil {
			return nil, none, err
		}
	}
	if err := req.Sampling.Validate(); err != nil {
		return nil, none, err
	}
	// No chat mode here: the thinking preset, which is what Qwen3's
	// generation_config.json recommends as the default.
	params := p.resolveSampling(req.Sampling, nil, true)
	maxTokens := DefaultCompletionTokens
	if req.MaxTokens != nil {
		// 0 with echo scores the prompt without generating
		// (lm-evaluation-harness's loglikelihood).
		if *req.MaxTokens < 1 && !(*req.MaxTokens == 0 && req.Echo) {
			return nil, none, engine.Invalid("max_tokens", "max_tokens must be at least 1 (0 only with echo, to score the prompt)")
		}
		maxTokens = *req.MaxTokens
	}
	if err := CheckStops(req.Stop); err != nil {
		return nil, none, err
	}
	base := engine.Request{MaxTokens: maxTokens, Stop: req.Stop, Sampling: params.Engine(), ReasoningBudget: -1, IgnoreEOS: req.IgnoreEOS,
		PromptOnly: maxTokens == 0}
	if req.Logprobs != nil {
		base.Logprobs, base.TopLogprobs, base.PromptLogprobs = true, *req.Logprobs, req.Echo
	}
	reqs := make([]engine.Request, 0, count)
	for i, text := range req.Prompts {
		if text == "" {
			return nil, none, engine.Invalid("prompt", "prompt[%d] is empty", i)
		}
		r := base
		r.Prompt = text
		reqs = append(reqs, r)
	}
	for i, toks := range req.PromptTokens {
		if len(toks) == 0 {
			return nil, none, engine.Invalid("prompt", "prompt[%d] is empty", i)
		}
		r := base
		r.PromptTokens = toks
		reqs = append(reqs, r)
	}
	return reqs, params, nil
}

// CheckStops validates stop strings (OpenAI allows 4; vLLM, as we, more).
func CheckStops(stops []string) error {
	for i, st := range stops {
		if st == "" {
			return engine.Invalid("stop", "stop[%d] is empty", i)
		}
	}
	if len(stops) > 16 {
		return engine.Invalid("stop", "at most 16 stop strings")
	}
	return nil
}

// CheckTopLogprobs validates a count of alternatives: chat's top_logprobs,
// or completions' integer logprobs.
func CheckTopLogprobs(param string, n int) error {
	if n < 0 || n > engine.MaxTopLogprobs {
		return engine.Invalid(param, "%s must be between 0 and %d", param, engine.MaxTopLogprobs)
	}
	return nil
}
