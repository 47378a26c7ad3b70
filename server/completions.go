package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/qwen3-lora/qwen3-server/conversation"
	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/server/apierror"
	"github.com/qwen3-lora/qwen3-server/server/openai"
)

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
	reqs, params, err := s.planner.Completion(&conversation.CompletionRequest{
		Prompts: body.Prompt.Texts, PromptTokens: body.Prompt.Tokens, Sampling: requestSampling(body.SamplingFields), N: body.N,
		MaxTokens: body.MaxTokens, Stop: body.Stop, Logprobs: body.Logprobs, Echo: body.Echo, IgnoreEOS: body.IgnoreEOS,
	})
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
		reqs[i].Priority = priorityOf(c.Request.Context())
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
	req, err := chatInput(&body)
	if err != nil {
		s.fail(c, err)
		return
	}
	prompt, _, err := s.planner.Render(req, nil)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, openai.ApplyTemplateResponse{Prompt: prompt})
}
