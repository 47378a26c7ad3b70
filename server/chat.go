package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/qwen3-lora/qwen3-server/conversation"
	"github.com/qwen3-lora/qwen3-server/conversation/qwen3"
	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/sampling"
	"github.com/qwen3-lora/qwen3-server/server/apierror"
	"github.com/qwen3-lora/qwen3-server/server/openai"
)

// Header carrying the sampling parameters a request ran with, after the
// precedence request > adapter defaults > mode preset > built-in.
const headerSampling = "X-Sampling-Params"

// chatCompletions is POST /v1/chat/completions: decode, resolve the model
// and its adapters, let the conversation layer plan it, run it, answer as
// one JSON body or as a stream.
func (s *Server) chatCompletions(c *gin.Context) {
	var body openai.ChatRequest
	e, ok := s.begin(c, &body)
	if !ok {
		return
	}
	uses, manifest, release, modelID, err := s.resolveModel(e, body.Model, body.Lora)
	if err != nil {
		s.fail(c, err)
		return
	}
	defer release()
	req, err := chatInput(&body)
	if err != nil {
		s.fail(c, err)
		return
	}
	plan, err := s.planner.Chat(e, req, manifest)
	if err != nil {
		s.fail(c, err)
		return
	}
	plan.Request.Adapters = uses
	c.Header(headerSampling, plan.Sampling.String())
	s.log.Debug("chat request", zap.String("id", c.GetString(ctxRequestID)), zap.Bool("thinking", plan.Thinking),
		zap.String("sampling", plan.Sampling.String()), zap.Int("max_tokens", plan.Request.MaxTokens))
	run := chatRun{plan: plan, model: modelID, stream: body.Stream, usage: body.StreamOptions != nil && body.StreamOptions.IncludeUsage}
	if run.stream {
		s.streamChat(c, e, run)
		return
	}
	s.completeChat(c, e, run)
}

// chatRun is a planned chat request and how to answer it.
type chatRun struct {
	plan   *conversation.Plan
	model  string // the "model" to answer with
	stream bool
	usage  bool // stream_options.include_usage
}

// chatInput maps the wire request to the conversation layer's: message
// contents flattened to text (the wire's content parts), the thinking
// switches gathered, the sampling fields typed.
func chatInput(body *openai.ChatRequest) (*conversation.Request, error) {
	req := &conversation.Request{
		Tools: body.Tools, ToolChoice: body.ToolChoice, Sampling: requestSampling(body.SamplingFields), N: body.N, Stop: body.Stop,
		Logprobs: body.Logprobs != nil && *body.Logprobs, TopLogprobs: body.TopLogprobs, ThinkingBudget: body.ThinkingBudget,
		AddGenerationPrompt: body.AddGenerationPrompt, ContinueFinalMessage: body.ContinueFinalMessage,
		Thinking:  qwen3.ThinkingSwitch{EnableThinking: body.EnableThinking, Think: body.Think, ReasoningEffort: body.ReasoningEffort},
		MaxTokens: body.MaxCompletionTokens,
	}
	if req.MaxTokens == nil {
		req.MaxTokens = body.MaxTokens
	}
	if body.ChatTemplateKwargs != nil {
		req.Thinking.TemplateKwarg = body.ChatTemplateKwargs.EnableThinking
	}
	if rf := body.ResponseFormat; rf != nil {
		req.ResponseFormat = &conversation.ResponseFormat{Type: rf.Type}
		if rf.JSONSchema != nil {
			req.ResponseFormat.Schema = rf.JSONSchema.Schema
		}
	}
	for i, m := range body.Messages {
		text, err := m.Text()
		if err != nil {
			return nil, apierror.BadRequest(fmt.Sprintf("messages[%d].content", i), err.Error())
		}
		msg := qwen3.Message{Role: m.Role, Content: text, ReasoningContent: m.ReasoningContent}
		if msg.ReasoningContent == nil {
			msg.ReasoningContent = m.Reasoning
		}
		for _, tc := range m.ToolCalls {
			msg.ToolCalls = append(msg.ToolCalls, qwen3.ToolCall{Name: tc.Function.Name, Arguments: tc.Function.Arguments})
		}
		req.Messages = append(req.Messages, msg)
	}
	return req, nil
}

// requestSampling types a request's own sampling fields (the conversation
// layer validates them).
func requestSampling(f openai.SamplingFields) sampling.Params {
	p := sampling.Params{
		Temperature: f.Temperature, TopP: f.TopP, TopK: f.TopK, MinP: f.MinP,
		PresencePenalty: f.PresencePenalty, FrequencyPenalty: f.FrequencyPenalty, RepeatPenalty: f.RepeatPenalty,
	}
	if f.Seed != nil {
		seed := uint32(*f.Seed)
		p.Seed = &seed
	}
	return p
}

// wireCalls converts parsed calls to OpenAI tool calls; first is the index
// of the first one in the response.
func wireCalls(calls []qwen3.Call, first int) []openai.ToolCall {
	out := make([]openai.ToolCall, len(calls))
	for i, c := range calls {
		idx := first + i
		args, _ := json.Marshal(c.Arguments)
		out[i] = openai.ToolCall{Index: &idx, ID: newID("call_"), Type: "function", Function: openai.FunctionCall{Name: c.Name, Arguments: args}}
	}
	return out
}

func usageOf(res *engine.Result) *openai.Usage {
	return &openai.Usage{
		PromptTokens: res.PromptTokens, CompletionTokens: res.CompletionTokens, TotalTokens: res.PromptTokens + res.CompletionTokens,
		PromptTokensDetails:     openai.PromptTokensDetails{CachedTokens: res.CachedTokens},
		CompletionTokensDetails: openai.CompletionTokensDetails{ReasoningTokens: res.ReasoningTokens},
	}
}

func strPtr(s string) *string { return &s }

// runChoices runs the plan n times concurrently (at most as many at once
// as the engine has slots). Each choice gets its own seed (seed+i) when a
// seed was given, so that n > 1 yields different samples reproducibly.
// onChunk is called on the choice's goroutine.
func (s *Server) runChoices(ctx context.Context, e engine.Engine, plan *conversation.Plan, onChunk func(i int, o *conversation.Output, ch engine.Chunk) error) ([]*conversation.Output, []*engine.Result, error) {
	outs := make([]*conversation.Output, plan.N)
	results := make([]*engine.Result, plan.N)
	for i := range outs {
		outs[i] = plan.NewOutput()
	}
	err := runAll(ctx, plan.N, e.Stats().Slots, func(ctx context.Context, i int) error {
		req := plan.Request
		req.Priority = priorityOf(ctx)
		if req.Sampling.Seed != nil {
			seed := *req.Sampling.Seed + uint32(i)
			req.Sampling.Seed = &seed
		}
		timer := s.metrics.timer()
		var err error
		results[i], err = e.Generate(ctx, &req, func(ch engine.Chunk) error {
			timer.token()
			return onChunk(i, outs[i], ch)
		})
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	for _, r := range results {
		s.metrics.tokens(r.PromptTokens, r.CompletionTokens)
	}
	return outs, results, nil
}

func sumUsage(results []*engine.Result) *openai.Usage {
	u := &openai.Usage{}
	for _, r := range results {
		one := usageOf(r)
		u.PromptTokens += one.PromptTokens
		u.CompletionTokens += one.CompletionTokens
		u.PromptTokensDetails.CachedTokens += one.PromptTokensDetails.CachedTokens
		u.CompletionTokensDetails.ReasoningTokens += one.CompletionTokensDetails.ReasoningTokens
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

func (s *Server) completeChat(c *gin.Context, e engine.Engine, run chatRun) {
	plan := run.plan
	outs, results, err := s.runChoices(c.Request.Context(), e, plan, func(_ int, o *conversation.Output, ch engine.Chunk) error {
		o.Feed(ch)
		return nil
	})
	if err != nil {
		s.fail(c, attachParam(err, "messages"))
		return
	}
	resp := openai.ChatResponse{ID: newID("chatcmpl-"), Object: "chat.completion", Created: time.Now().Unix(), Model: run.model, Usage: sumUsage(results)}
	for i, o := range outs {
		o.Finish()
		msg := &openai.ResponseMessage{Role: "assistant", Content: strPtr(o.Answer())}
		if r, ok := o.Reasoning(); ok {
			msg.ReasoningContent, msg.Reasoning = &r, &r
		}
		if calls := o.Calls(); len(calls) > 0 {
			msg.ToolCalls = wireCalls(calls, 0)
			for k := range msg.ToolCalls {
				msg.ToolCalls[k].Index = nil
			}
			if strings.TrimSpace(*msg.Content) == "" {
				msg.Content = nil
			}
		}
		reason := o.FinishReason(results[i])
		choice := openai.ChatChoice{Index: i, Message: msg, FinishReason: &reason}
		if plan.Logprobs {
			choice.Logprobs = chatLogprobs(e, o.Logprobs())
		}
		resp.Choices = append(resp.Choices, choice)
	}
	c.Set(ctxTokensIn, resp.Usage.PromptTokens)
	c.Set(ctxTokensOut, resp.Usage.CompletionTokens)
	c.JSON(http.StatusOK, resp)
}

// streamChat sends Server-Sent Events. Headers go out with the first event,
// so an error before any output (queue full, bad prompt) is still a normal
// HTTP error; after that, errors are sent in-band as an error event.
func (s *Server) streamChat(c *gin.Context, e engine.Engine, run chatRun) {
	plan := run.plan
	id, created := newID("chatcmpl-"), time.Now().Unix()
	w := &sseWriter{c: c}
	chunk := func(index int, delta openai.ResponseMessage, finish *string) openai.ChatResponse {
		return openai.ChatResponse{ID: id, Object: "chat.completion.chunk", Created: created, Model: run.model,
			Choices: []openai.ChatChoice{{Index: index, Delta: &delta, FinishReason: finish}}}
	}
	// withLogprobs attaches the logprobs not sent yet; the last event of a
	// choice takes the rest.
	withLogprobs := func(ev openai.ChatResponse, o *conversation.Output) openai.ChatResponse {
		if plan.Logprobs {
			ev.Choices[0].Logprobs = chatLogprobs(e, o.UnsentLogprobs())
		}
		return ev
	}
	started := make([]bool, plan.N)
	sentCalls := make([]int, plan.N)
	sendDelta := func(i int, o *conversation.Output, d conversation.Delta) error {
		if !started[i] {
			started[i] = true
			if err := w.event(chunk(i, openai.ResponseMessage{Role: "assistant", Content: strPtr("")}, nil)); err != nil {
				return err
			}
		}
		if d.Empty() {
			return nil
		}
		m := openai.ResponseMessage{}
		if d.Reasoning != "" {
			m.ReasoningContent, m.Reasoning = strPtr(d.Reasoning), strPtr(d.Reasoning)
		}
		if d.Answer != "" {
			m.Content = strPtr(d.Answer)
		}
		if len(d.Calls) > 0 {
			m.ToolCalls = wireCalls(d.Calls, sentCalls[i])
			sentCalls[i] += len(d.Calls)
		}
		return w.event(withLogprobs(chunk(i, m, nil), o))
	}
	outs, results, err := s.runChoices(c.Request.Context(), e, plan, func(i int, o *conversation.Output, ch engine.Chunk) error {
		return sendDelta(i, o, o.Feed(ch))
	})
	if err != nil {
		s.failStream(c, w, err, "messages")
		return
	}
	for i, o := range outs {
		sendDelta(i, o, o.Finish())
		reason := o.FinishReason(results[i])
		w.event(withLogprobs(chunk(i, openai.ResponseMessage{}, &reason), o))
	}
	usage := sumUsage(results)
	if run.usage {
		w.event(openai.ChatResponse{ID: id, Object: "chat.completion.chunk", Created: created, Model: run.model, Choices: []openai.ChatChoice{}, Usage: usage})
	}
	w.done()
	c.Set(ctxTokensIn, usage.PromptTokens)
	c.Set(ctxTokensOut, usage.CompletionTokens)
}
