package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/qwen3-lora/qwen3-server/adapters"
	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/qwen3"
	"github.com/qwen3-lora/qwen3-server/sampling"
	"github.com/qwen3-lora/qwen3-server/server/apierror"
	"github.com/qwen3-lora/qwen3-server/server/openai"
)

// Header carrying the sampling parameters a request ran with, after the
// precedence request > adapter defaults > mode preset > built-in.
const headerSampling = "X-Sampling-Params"

// chatPlan is a validated chat request, ready for the engine.
type chatPlan struct {
	n        int  // choices
	tools    bool // parse <tool_call> blocks into tool_calls
	req      engine.Request
	thinking bool
	sampling sampling.Params
	stream   bool
	usage    bool // stream_options.include_usage
	model    string
	logprobs bool

	// continued: the prompt ends inside the final assistant message
	// (continue_final_message), so the output continues it.
	continued bool
}

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
	plan, err := s.planChat(e, &body, manifest)
	if err != nil {
		s.fail(c, err)
		return
	}
	plan.req.Adapters, plan.model = uses, modelID
	c.Header(headerSampling, plan.sampling.String())
	s.log.Debug("chat request", zap.String("id", c.GetString(ctxRequestID)), zap.Bool("thinking", plan.thinking),
		zap.String("sampling", plan.sampling.String()), zap.Int("max_tokens", plan.req.MaxTokens))
	if plan.stream {
		s.streamChat(c, e, plan)
		return
	}
	s.completeChat(c, e, plan)
}

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

func (s *Server) planChat(e engine.Engine, body *openai.ChatRequest, manifest *adapters.Manifest) (*chatPlan, error) {
	if manifest == nil {
		manifest = &adapters.Manifest{}
	}
	if len(body.Messages) == 0 {
		return nil, apierror.BadRequest("messages", "messages must be a non-empty array")
	}
	n := 1
	if body.N != nil {
		if *body.N < 1 || *body.N > 16 {
			return nil, apierror.BadRequest("n", "n must be between 1 and 16")
		}
		n = *body.N
	}
	// Forced tool calls and structured output both constrain the whole
	// output with a grammar, so they run in non-thinking mode.
	grammar, schema, err := forcedToolCalls(body.Tools, body.ToolChoice)
	if err != nil {
		return nil, err
	}
	if rf := body.ResponseFormat; grammar != "" && rf != nil && rf.Type != "" && rf.Type != "text" {
		return nil, apierror.BadRequest("response_format", "response_format cannot be combined with a forced tool_choice")
	}
	if rf := body.ResponseFormat; rf != nil && rf.Type != "" && rf.Type != "text" {
		switch rf.Type {
		case "json_object":
			schema = []byte(`{"type":"object"}`)
		case "json_schema":
			if rf.JSONSchema == nil || len(rf.JSONSchema.Schema) == 0 {
				return nil, apierror.BadRequest("response_format", "response_format json_schema needs json_schema.schema")
			}
			schema = rf.JSONSchema.Schema
		default:
			return nil, apierror.BadRequest("response_format", fmt.Sprintf("response_format type %q: want text, json_object or json_schema", rf.Type))
		}
	}
	if len(schema) > 0 {
		// The grammar constrains the whole output, so there is no room for
		// <think>: these requests run in non-thinking mode.
		param := "response_format"
		if grammar != "" {
			param = "tool_choice"
		}
		sw := qwen3.ThinkingSwitch{EnableThinking: body.EnableThinking, Think: body.Think, ReasoningEffort: body.ReasoningEffort}
		if body.ChatTemplateKwargs != nil {
			sw.TemplateKwarg = body.ChatTemplateKwargs.EnableThinking
		}
		if on, _ := sw.Resolve(false); on {
			return nil, apierror.BadRequest(param, param+" cannot be combined with thinking: the grammar leaves no room for <think>; drop the thinking switch")
		}
		off := false
		body.EnableThinking, body.ChatTemplateKwargs, body.Think, body.ReasoningEffort = &off, nil, nil, nil
	}
	if strings.TrimSpace(string(body.ToolChoice)) == `"none"` {
		body.Tools = nil // the model is not told about the tools
	}
	prompt, thinking, err := s.renderChatWith(body, manifest)
	if err != nil {
		return nil, err
	}
	// A continuation inside the reasoning (a prefilled, unclosed <think>)
	// needs thinking on; a continuation of the answer has no reasoning left,
	// so no thinking budget either.
	reasoning := thinking
	if body.ContinueFinalMessage {
		_, open := qwen3.ContinueParser(thinking, prompt)
		if open && !thinking {
			return nil, apierror.BadRequest("continue_final_message", "the final assistant message leaves a <think> block open but thinking is off (switched off, or by response_format or a forced tool_choice): turn thinking on to continue the reasoning, or close it with </think>")
		}
		reasoning = open
	}

	reqParams, err := requestSampling(body.SamplingFields)
	if err != nil {
		return nil, err
	}
	// request > adapter manifest > the mode's preset > built-in
	params := sampling.Resolve(reqParams, manifest.Sampling, s.preset(thinking), sampling.BuiltIn)

	maxTokens := 0
	for _, v := range []*int{body.MaxCompletionTokens, body.MaxTokens} {
		if v != nil {
			if *v < 1 {
				return nil, apierror.BadRequest("max_tokens", "max_tokens must be at least 1")
			}
			maxTokens = *v
			break
		}
	}
	if err := checkStops(body.Stop); err != nil {
		return nil, err
	}
	logprobs := body.Logprobs != nil && *body.Logprobs
	top := 0
	if body.TopLogprobs != nil {
		if !logprobs {
			return nil, apierror.BadRequest("top_logprobs", "top_logprobs needs logprobs: true")
		}
		if err := checkTopLogprobs("top_logprobs", *body.TopLogprobs); err != nil {
			return nil, err
		}
		top = *body.TopLogprobs
	}
	plan := &chatPlan{
		logprobs: logprobs,
		n:        n,
		tools:    len(body.Tools) > 0,
		thinking: thinking, sampling: params, stream: body.Stream, model: e.Info().ID,
		usage: body.StreamOptions != nil && body.StreamOptions.IncludeUsage,
		req:   engine.Request{Prompt: prompt, MaxTokens: maxTokens, Stop: body.Stop, Sampling: params.Engine(), ReasoningBudget: -1, JSONSchema: schema, Grammar: grammar},
	}
	plan.continued = body.ContinueFinalMessage
	budget := s.sampling.ThinkingBudget
	if body.ThinkingBudget != nil {
		if *body.ThinkingBudget < 0 {
			return nil, apierror.BadRequest("thinking_budget", "thinking_budget must be 0 or more tokens")
		}
		budget = *body.ThinkingBudget
	}
	if reasoning {
		// The engine counts the reasoning tokens (usage) and enforces the
		// budget. Only an engine without Qwen3's vocabulary (the tests' fake)
		// lacks the tags; it can then run without a budget, uncounted.
		open, end, endTok, err := s.reasoningTags(e)
		if err != nil && budget >= 0 {
			return nil, err
		}
		if err == nil {
			if plan.continued {
				open = -1 // the prompt opened the reasoning
			}
			plan.req.ReasoningBudget, plan.req.ReasoningStartToken, plan.req.ReasoningEnd, plan.req.ReasoningEndToken = budget, open, end, endTok
		}
	}
	plan.req.Logprobs, plan.req.TopLogprobs = logprobs, top
	return plan, nil
}

// requestSampling takes a request's own sampling fields, validated.
func requestSampling(f openai.SamplingFields) (sampling.Params, error) {
	p := sampling.Params{
		Temperature: f.Temperature, TopP: f.TopP, TopK: f.TopK, MinP: f.MinP,
		PresencePenalty: f.PresencePenalty, FrequencyPenalty: f.FrequencyPenalty, RepeatPenalty: f.RepeatPenalty,
	}
	if f.Seed != nil {
		seed := uint32(*f.Seed)
		p.Seed = &seed
	}
	return p, p.Validate()
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

// renderChat validates the messages, resolves the thinking switch and
// renders the Qwen3 prompt.
func (s *Server) renderChat(body *openai.ChatRequest) (string, bool, error) {
	return s.renderChatWith(body, &adapters.Manifest{})
}

// renderChatWith also applies an adapter manifest: its system prompt when
// the request has none, its thinking default when the request does not say.
func (s *Server) renderChatWith(body *openai.ChatRequest, manifest *adapters.Manifest) (string, bool, error) {
	if len(body.Messages) == 0 {
		return "", false, apierror.BadRequest("messages", "messages must be a non-empty array")
	}
	conv := qwen3.Conversation{Tools: body.Tools, AddGenerationPrompt: body.AddGenerationPrompt == nil || *body.AddGenerationPrompt, ContinueFinalMessage: body.ContinueFinalMessage}
	if conv.ContinueFinalMessage {
		if conv.AddGenerationPrompt {
			// vLLM's words; add_generation_prompt defaults to true there too.
			return "", false, apierror.BadRequest("continue_final_message", "Cannot set both `continue_final_message` and `add_generation_prompt` to True.")
		}
		if last := body.Messages[len(body.Messages)-1]; last.Role != "assistant" {
			return "", false, apierror.BadRequest("continue_final_message", fmt.Sprintf("continue_final_message continues the last message, which must be an assistant message (it is %q)", last.Role))
		}
	}
	if manifest.SystemPrompt != "" && body.Messages[0].Role != "system" && body.Messages[0].Role != "developer" {
		conv.Messages = append(conv.Messages, qwen3.Message{Role: "system", Content: manifest.SystemPrompt})
	}
	for i, m := range body.Messages {
		text, err := m.Text()
		if err != nil {
			return "", false, apierror.BadRequest(fmt.Sprintf("messages[%d].content", i), err.Error())
		}
		switch m.Role {
		case "system", "user", "assistant", "tool":
		case "developer": // OpenAI's newer name for system
			m.Role = "system"
		default:
			return "", false, apierror.BadRequest(fmt.Sprintf("messages[%d].role", i), fmt.Sprintf("unknown role %q (system, user, assistant, tool)", m.Role))
		}
		msg := qwen3.Message{Role: m.Role, Content: text, ReasoningContent: m.ReasoningContent}
		if msg.ReasoningContent == nil {
			msg.ReasoningContent = m.Reasoning
		}
		for _, tc := range m.ToolCalls {
			msg.ToolCalls = append(msg.ToolCalls, qwen3.ToolCall{Name: tc.Function.Name, Arguments: tc.Function.Arguments})
		}
		conv.Messages = append(conv.Messages, msg)
	}
	sw := qwen3.ThinkingSwitch{EnableThinking: body.EnableThinking, Think: body.Think, ReasoningEffort: body.ReasoningEffort}
	if body.ChatTemplateKwargs != nil {
		sw.TemplateKwarg = body.ChatTemplateKwargs.EnableThinking
	}
	def := s.sampling.EnableThinking
	if manifest.EnableThinking != nil {
		def = *manifest.EnableThinking
	}
	thinking, err := sw.Resolve(def)
	if err != nil {
		return "", false, apierror.BadRequest("enable_thinking", err.Error())
	}
	if !thinking {
		conv.EnableThinking = &thinking
	}
	prompt, err := qwen3.Render(conv)
	if err != nil {
		param := "messages"
		if errors.Is(err, qwen3.ErrContinue) {
			param = "continue_final_message"
		}
		return "", false, apierror.BadRequest(param, err.Error())
	}
	return prompt, thinking, nil
}

// reasoningTags are the reasoning's opening tag "<think>" and what the
// model writes to close it, "\n</think>\n\n" (with the "</think>" token),
// tokenized once.
func (s *Server) reasoningTags(e engine.Engine) (open int32, end []int32, endTok int32, err error) {
	s.endOnce.Do(func() {
		toks, err := e.Tokenize("<think>\n</think>\n\n", true)
		if err != nil || len(toks) != 4 {
			s.endErr = fmt.Errorf("cannot tokenize the reasoning tags: %v %v", toks, err)
			return
		}
		s.endToks = toks
	})
	if s.endErr != nil {
		return 0, nil, 0, s.endErr
	}
	return s.endToks[0], s.endToks[1:], s.endToks[2], nil
}

func (s *Server) preset(thinking bool) sampling.Params {
	p := s.sampling.NonThinking
	if thinking {
		p = s.sampling.Thinking
	}
	return sampling.Params{Temperature: &p.Temperature, TopP: &p.TopP, TopK: &p.TopK, MinP: &p.MinP}
}

func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// generation runs a plan through the engine and the reasoning parser,
// calling onDelta with reasoning and answer text as they come.
type generation struct {
	parser    *qwen3.Parser
	tools     *qwen3.ToolCallParser // nil without tools
	calls     []qwen3.Call
	reasoning strings.Builder
	content   strings.Builder
	// logprobs of every generated token (reasoning included, as vLLM), and
	// how many a stream has sent.
	logprobs []engine.Logprob
	lpSent   int
}

func newGeneration(plan *chatPlan) *generation {
	g := &generation{parser: qwen3.NewParser(plan.thinking)}
	if plan.continued {
		g.parser, _ = qwen3.ContinueParser(plan.thinking, plan.req.Prompt)
	}
	if plan.tools {
		g.tools = &qwen3.ToolCallParser{}
	}
	return g
}

// feed returns the reasoning and answer text to emit, and tool calls
// completed by this chunk.
func (g *generation) feed(ch engine.Chunk) (string, string, []qwen3.Call) {
	g.logprobs = append(g.logprobs, ch.Logprobs...)
	r, a := g.parser.Push(ch.Text)
	return g.record(r, a, false)
}

func (g *generation) finish() (string, string, []qwen3.Call) {
	r, a := g.parser.Finish()
	return g.record(r, a, true)
}

func (g *generation) record(r, a string, final bool) (string, string, []qwen3.Call) {
	var calls []qwen3.Call
	if g.tools != nil {
		a, calls = g.tools.Push(a)
		if final {
			a += g.tools.Finish()
		}
		g.calls = append(g.calls, calls...)
	}
	g.reasoning.WriteString(r)
	g.content.WriteString(a)
	return r, a, calls
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
func (s *Server) runChoices(ctx context.Context, e engine.Engine, plan *chatPlan, onChunk func(i int, g *generation, ch engine.Chunk) error) ([]*generation, []*engine.Result, error) {
	gens := make([]*generation, plan.n)
	results := make([]*engine.Result, plan.n)
	for i := range gens {
		gens[i] = newGeneration(plan)
	}
	err := runAll(ctx, plan.n, e.Stats().Slots, func(ctx context.Context, i int) error {
		req := plan.req
		if req.Sampling.Seed != nil {
			seed := *req.Sampling.Seed + uint32(i)
			req.Sampling.Seed = &seed
		}
		timer := s.metrics.timer()
		var err error
		results[i], err = e.Generate(ctx, &req, func(ch engine.Chunk) error {
			timer.token()
			return onChunk(i, gens[i], ch)
		})
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	for _, r := range results {
		s.metrics.tokens(r.PromptTokens, r.CompletionTokens)
	}
	return gens, results, nil
}

// finishReason is the engine's, or tool_calls when the answer called tools.
func finishReason(res *engine.Result, g *generation) string {
	if len(g.calls) > 0 && res.FinishReason == engine.FinishStop {
		return "tool_calls"
	}
	return res.FinishReason
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

func (s *Server) completeChat(c *gin.Context, e engine.Engine, plan *chatPlan) {
	gens, results, err := s.runChoices(c.Request.Context(), e, plan, func(_ int, g *generation, ch engine.Chunk) error {
		g.feed(ch)
		return nil
	})
	if err != nil {
		s.fail(c, attachParam(err, "messages"))
		return
	}
	resp := openai.ChatResponse{ID: newID("chatcmpl-"), Object: "chat.completion", Created: time.Now().Unix(), Model: plan.model, Usage: sumUsage(results)}
	for i, g := range gens {
		g.finish()
		msg := &openai.ResponseMessage{Role: "assistant", Content: strPtr(g.content.String())}
		if r := g.reasoning.String(); plan.thinking && (r != "" || g.parser.ReasoningSeen) {
			msg.ReasoningContent, msg.Reasoning = &r, &r
		}
		if len(g.calls) > 0 {
			msg.ToolCalls = wireCalls(g.calls, 0)
			for k := range msg.ToolCalls {
				msg.ToolCalls[k].Index = nil
			}
			if strings.TrimSpace(*msg.Content) == "" {
				msg.Content = nil
			}
		}
		reason := finishReason(results[i], g)
		choice := openai.ChatChoice{Index: i, Message: msg, FinishReason: &reason}
		if plan.logprobs {
			choice.Logprobs = chatLogprobs(e, g.logprobs)
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
func (s *Server) streamChat(c *gin.Context, e engine.Engine, plan *chatPlan) {
	id, created := newID("chatcmpl-"), time.Now().Unix()
	w := &sseWriter{c: c}
	chunk := func(index int, delta openai.ResponseMessage, finish *string) openai.ChatResponse {
		return openai.ChatResponse{ID: id, Object: "chat.completion.chunk", Created: created, Model: plan.model,
			Choices: []openai.ChatChoice{{Index: index, Delta: &delta, FinishReason: finish}}}
	}
	// withLogprobs attaches the logprobs not sent yet: those of the tokens
	// whose text this event carries, and of earlier ones whose text the
	// parser held back or dropped (tags); the last event takes the rest.
	withLogprobs := func(ev openai.ChatResponse, g *generation) openai.ChatResponse {
		if plan.logprobs {
			ev.Choices[0].Logprobs = chatLogprobs(e, g.logprobs[g.lpSent:])
			g.lpSent = len(g.logprobs)
		}
		return ev
	}
	started := make([]bool, plan.n)
	sentCalls := make([]int, plan.n)
	sendDelta := func(i int, g *generation, r, a string, calls []qwen3.Call) error {
		if !started[i] {
			started[i] = true
			if err := w.event(chunk(i, openai.ResponseMessage{Role: "assistant", Content: strPtr("")}, nil)); err != nil {
				return err
			}
		}
		if r == "" && a == "" && len(calls) == 0 {
			return nil
		}
		d := openai.ResponseMessage{}
		if r != "" {
			d.ReasoningContent, d.Reasoning = strPtr(r), strPtr(r)
		}
		if a != "" {
			d.Content = strPtr(a)
		}
		if len(calls) > 0 {
			d.ToolCalls = wireCalls(calls, sentCalls[i])
			sentCalls[i] += len(calls)
		}
		return w.event(withLogprobs(chunk(i, d, nil), g))
	}
	gens, results, err := s.runChoices(c.Request.Context(), e, plan, func(i int, g *generation, ch engine.Chunk) error {
		r, a, calls := g.feed(ch)
		return sendDelta(i, g, r, a, calls)
	})
	if err != nil {
		s.failStream(c, w, err, "messages")
		return
	}
	for i, g := range gens {
		r, a, calls := g.finish()
		sendDelta(i, g, r, a, calls)
		reason := finishReason(results[i], g)
		w.event(withLogprobs(chunk(i, openai.ResponseMessage{}, &reason), g))
	}
	usage := sumUsage(results)
	if plan.usage {
		w.event(openai.ChatResponse{ID: id, Object: "chat.completion.chunk", Created: created, Model: plan.model, Choices: []openai.ChatChoice{}, Usage: usage})
	}
	w.done()
	c.Set(ctxTokensIn, usage.PromptTokens)
	c.Set(ctxTokensOut, usage.CompletionTokens)
}

// failStream ends a generation that failed: nothing more when the client
// is gone (the engine already freed the slot), a normal HTTP error when no
// event went out yet (w may be nil: not streaming), else an in-band error
// event and [DONE]. param names the field a bad-input error points at.
func (s *Server) failStream(c *gin.Context, w *sseWriter, err error, param string) {
	if c.Request.Context().Err() != nil {
		c.Set(ctxError, "client disconnected")
		return
	}
	if w == nil || !w.started {
		s.fail(c, attachParam(err, param))
		return
	}
	ae := apierror.From(attachParam(err, param))
	c.Set(ctxError, ae.Message)
	w.event(ae.Body())
	w.done()
}

// sseWriter writes "data: <json>\n\n" events and flushes each; safe for
// several goroutines (the choices or prompts of one request).
type sseWriter struct {
	c       *gin.Context
	started bool
	mu      sync.Mutex
}

func (w *sseWriter) event(v any) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.started {
		h := w.c.Writer.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		w.c.Status(http.StatusOK)
		w.started = true
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w.c.Writer, "data: %s\n\n", b); err != nil {
		return err
	}
	w.c.Writer.Flush()
	return nil
}

func (w *sseWriter) done() {
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprint(w.c.Writer, "data: [DONE]\n\n")
	w.c.Writer.Flush()
}
