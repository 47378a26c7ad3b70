package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/sampling"
	"github.com/qwen3-lora/qwen3-server/server/apierror"
	"github.com/qwen3-lora/qwen3-server/server/openai"
)

// defaultCompletionTokens follows OpenAI's (and vLLM's) /v1/completions
// default max_tokens.
const defaultCompletionTokens = 16

// completions serves raw-prompt completions. An array of prompts is a
// batch: the prompts run concurrently (at most as many at a time as the
// engine has slots, so a large batch waits its turn instead of overflowing
// the queue) and come back as one choice per prompt, index in prompt order.
func (s *Server) completions(c *gin.Context) {
	var body openai.CompletionRequest
	e, ok := s.begin(c, &body)
	if !ok {
		return
	}
	reqs, params, err := s.planCompletions(e, &body)
	if err != nil {
		s.fail(c, err)
		return
	}
	uses, _, release, model, err := s.resolveModel(e, body.Model, body.Lora)
	if err != nil {
		s.fail(c, err)
		return
	}
	defer release()
	for i := range reqs {
		reqs[i].Adapters = uses
	}
	c.Header(headerSampling, params.String())
	id, created := newID("cmpl-"), time.Now().Unix()
	var w *sseWriter
	if body.Stream {
		w = &sseWriter{c: c}
	}
	send := func(index int, text string, lp *openai.CompletionLogprobs, finish *string) error {
		if w == nil {
			return nil
		}
		return w.event(openai.CompletionResponse{ID: id, Object: "text_completion", Created: created, Model: model,
			Choices: []openai.CompletionChoice{{Index: index, Text: text, Logprobs: lp, FinishReason: finish}}})
	}

	results := make([]*engine.Result, len(reqs))
	// Per prompt: the logprobs builder and, not streaming, everything.
	lps := make([]*completionLogprobs, len(reqs))
	all := make([]*openai.CompletionLogprobs, len(reqs))
	err = runAll(c.Request.Context(), len(reqs), e.Stats().Slots, func(ctx context.Context, i int) error {
		timer := s.metrics.timer()
		var err error
		first := true
		if reqs[i].Logprobs {
			lps[i] = &completionLogprobs{e: e}
			if w == nil {
				all[i] = &openai.CompletionLogprobs{}
			}
		}
		// logprobsOf converts a chunk's logprobs (nil without logprobs).
		logprobsOf := func(l []engine.Logprob) *openai.CompletionLogprobs {
			if lps[i] == nil {
				return nil
			}
			return lps[i].add(l, all[i])
		}
		results[i], err = e.Generate(ctx, &reqs[i], func(ch engine.Chunk) error {
			if first && body.Echo {
				// echo: the prompt (and its logprobs) before the completion
				lp := logprobsOf(ch.PromptLogprobs)
				if err := send(i, promptText(e, reqs[i]), lp, nil); err != nil {
					return err
				}
			}
			first = false
			if ch.Token < 0 { // PromptOnly: nothing generated
				return nil
			}
			timer.token()
			lp := logprobsOf(ch.Logprobs)
			if ch.Text == "" && (lp == nil || len(lp.Tokens) == 0) {
				return nil
			}
			return send(i, ch.Text, lp, nil)
		})
		if err != nil {
			return err
		}
		reason := results[i].FinishReason
		return send(i, "", nil, &reason)
	})
	if err != nil {
		s.failStream(c, w, err, "prompt")
		return
	}
	usage := &openai.Usage{}
	for _, r := range results {
		usage.PromptTokens += r.PromptTokens
		usage.CompletionTokens += r.CompletionTokens
		usage.PromptTokensDetails.CachedTokens += r.CachedTokens
	}
	usage.TotalTokens = usage.PromptTokens + usage.CompletionTokens
	s.metrics.tokens(usage.PromptTokens, usage.CompletionTokens)
	c.Set(ctxTokensIn, usage.PromptTokens)
	c.Set(ctxTokensOut, usage.CompletionTokens)
	if w != nil {
		if body.StreamOptions != nil && body.StreamOptions.IncludeUsage {
			w.event(openai.CompletionResponse{ID: id, Object: "text_completion", Created: created, Model: model, Choices: []openai.CompletionChoice{}, Usage: usage})
		}
		w.done()
		return
	}
	resp := openai.CompletionResponse{ID: id, Object: "text_completion", Created: created, Model: model, Usage: usage}
	for i, r := range results {
		reason := r.FinishReason
		text := r.Text
		if body.Echo {
			text = promptText(e, reqs[i]) + text
		}
		resp.Choices = append(resp.Choices, openai.CompletionChoice{Index: i, Text: text, Logprobs: all[i], FinishReason: &reason})
	}
	c.JSON(http.StatusOK, resp)
}

func promptText(e engine.Engine, r engine.Request) string {
	if r.PromptTokens != nil {
		return e.Detokenize(r.PromptTokens)
	}
	return r.Prompt
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

func (s *Server) planCompletions(e engine.Engine, body *openai.CompletionRequest) ([]engine.Request, sampling.Params, error) {
	var none sampling.Params
	if body.Prompt.Len() == 0 {
		return nil, none, apierror.BadRequest("prompt", "prompt is required: a string or an array of strings")
	}
	if body.Prompt.Len() > 256 {
		return nil, none, apierror.BadRequest("prompt", "at most 256 prompts per request")
	}
	if body.N != nil && *body.N != 1 {
		return nil, none, apierror.BadRequest("n", "only n=1 is supported for completions; send the prompt several times in the prompt array")
	}
	if body.Logprobs != nil {
		if err := checkTopLogprobs("logprobs", *body.Logprobs); err != nil {
			return nil, none, err
		}
	}
	reqParams, err := requestSampling(body.SamplingFields)
	if err != nil {
		return nil, none, err
	}
	// Raw completions have no chat mode; they use the thinking preset, which
	// is what Qwen3's generation_config.json recommends as the default.
	params := sampling.Resolve(reqParams, s.preset(true), sampling.BuiltIn)
	maxTokens := defaultCompletionTokens
	if body.MaxTokens != nil {
		// 0 with echo scores the prompt without generating (lm-evaluation-harness's loglikelihood).
		if *body.MaxTokens < 1 && !(*body.MaxTokens == 0 && body.Echo) {
			return nil, none, apierror.BadRequest("max_tokens", "max_tokens must be at least 1 (0 only with echo, to score the prompt)")
		}
		maxTokens = *body.MaxTokens
	}
	if err := checkStops(body.Stop); err != nil {
		return nil, none, err
	}
	base := engine.Request{MaxTokens: maxTokens, Stop: body.Stop, Sampling: params.Engine(), ReasoningBudget: -1, IgnoreEOS: body.IgnoreEOS,
		PromptOnly: maxTokens == 0}
	if body.Logprobs != nil {
		base.Logprobs, base.TopLogprobs, base.PromptLogprobs = true, *body.Logprobs, body.Echo
	}
	var reqs []engine.Request
	for i, p := range body.Prompt.Texts {
		if strings.TrimSpace(p) == "" && p == "" {
			return nil, none, apierror.BadRequest("prompt", fmt.Sprintf("prompt[%d] is empty", i))
		}
		r := base
		r.Prompt = p
		reqs = append(reqs, r)
	}
	for i, toks := range body.Prompt.Tokens {
		if len(toks) == 0 {
			return nil, none, apierror.BadRequest("prompt", fmt.Sprintf("prompt[%d] is empty", i))
		}
		r := base
		r.PromptTokens = toks
		reqs = append(reqs, r)
	}
	return reqs, params, nil
}

func checkStops(stops []string) error {
	for i, st := range stops {
		if st == "" {
			return apierror.BadRequest("stop", fmt.Sprintf("stop[%d] is empty", i))
		}
	}
	if len(stops) > 16 {
		return apierror.BadRequest("stop", "at most 16 stop strings")
	}
	return nil
}

func (s *Server) tokenize(c *gin.Context) {
	var body openai.TokenizeRequest
	e, ok := s.begin(c, &body)
	if !ok {
		return
	}
	special := body.ParseSpecial == nil || *body.ParseSpecial
	toks, err := e.Tokenize(body.Content, special)
	if err != nil {
		s.fail(c, apierror.BadRequest("content", err.Error()))
		return
	}
	if toks == nil {
		toks = []int32{}
	}
	c.JSON(http.StatusOK, openai.TokenizeResponse{Tokens: toks})
}

func (s *Server) detokenize(c *gin.Context) {
	var body openai.DetokenizeRequest
	e, ok := s.begin(c, &body)
	if !ok {
		return
	}
	vocab := e.Info().VocabSize
	for i, t := range body.Tokens {
		if t < 0 || (vocab > 0 && int(t) >= vocab) {
			s.fail(c, apierror.BadRequest("tokens", fmt.Sprintf("tokens[%d] = %d is outside the vocabulary (0..%d)", i, t, vocab-1)))
			return
		}
	}
	c.JSON(http.StatusOK, openai.DetokenizeResponse{Content: e.Detokenize(body.Tokens)})
}

func (s *Server) applyTemplate(c *gin.Context) {
	var body openai.ChatRequest
	if _, ok := s.begin(c, &body); !ok {
		return
	}
	prompt, _, err := s.renderChat(&body)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, openai.ApplyTemplateResponse{Prompt: prompt})
}
