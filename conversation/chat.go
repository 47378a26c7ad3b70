package conversation

import (
	"errors"
	"fmt"
	"strings"

	"github.com/qwen3-lora/qwen3-server/adapters"
	"github.com/qwen3-lora/qwen3-server/conversation/qwen3"
	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/sampling"
)

// MaxChoices is the largest n a chat request may ask for.
const MaxChoices = 16

// Plan is a validated chat request, ready for the engine.
type Plan struct {
	// Request is what the engine runs for each choice; the caller adds the
	// adapters.
	Request engine.Request
	// N choices; each gets seed+i when a seed is set.
	N int
	// Thinking: the prompt opens the reasoning, and the output is parsed
	// into reasoning and answer.
	Thinking bool
	// Sampling is the resolved precedence: request > adapter manifest >
	// the mode's preset > built-in.
	Sampling sampling.Params
	// Tools: <tool_call> blocks in the answer become tool calls.
	Tools bool
	// Continued: the prompt ends inside the final assistant message
	// (continue_final_message), so the output continues it.
	Continued bool
	Logprobs  bool
}

// Chat plans a chat request for the model behind tok. m is the manifest of
// the adapter the request names (nil: none). Errors are engine.Errors of
// KindInvalid naming the wire parameter.
func (p *Planner) Chat(tok Tokenizer, req *Request, m *adapters.Manifest) (*Plan, error) {
	if err := checkMessages(req); err != nil {
		return nil, err
	}
	n := 1
	if req.N != nil {
		if *req.N < 1 || *req.N > MaxChoices {
			return nil, engine.Invalid("n", "n must be between 1 and %d", MaxChoices)
		}
		n = *req.N
	}
	grammar, schema, constrainedBy, err := outputGrammar(req)
	if err != nil {
		return nil, err
	}
	// A grammar constrains the whole output, so there is no room for
	// <think>: these requests run in non-thinking mode, and asking for
	// thinking as well is an error rather than silently ignored.
	def := p.ThinkingDefault(m)
	if constrainedBy != "" {
		def = false
	}
	thinking, err := req.Thinking.Resolve(def)
	if err != nil {
		return nil, engine.Invalid("enable_thinking", "%v", err)
	}
	if constrainedBy != "" && thinking {
		return nil, engine.Invalid(constrainedBy, "%s cannot be combined with thinking: the grammar leaves no room for <think>; drop the thinking switch", constrainedBy)
	}
	prompt, err := render(req, m, thinking)
	if err != nil {
		return nil, err
	}
	// A continuation inside the reasoning (a prefilled, unclosed <think>)
	// needs thinking on; a continuation of the answer has no reasoning
	// left, so no thinking budget either.
	reasoning := thinking
	if req.ContinueFinalMessage {
		_, open := qwen3.ContinueParser(thinking, prompt)
		if open && !thinking {
			return nil, engine.Invalid("continue_final_message", "the final assistant message leaves a <think> block open but thinking is off (switched off, or by response_format or a forced tool_choice): turn thinking on to continue the reasoning, or close it with </think>")
		}
		reasoning = open
	}
	if err := req.Sampling.Validate(); err != nil {
		return nil, err
	}
	params := p.resolveSampling(req.Sampling, m, thinking)
	maxTokens := 0 // the rest of the context
	if req.MaxTokens != nil {
		if *req.MaxTokens < 1 {
			return nil, engine.Invalid("max_tokens", "max_tokens must be at least 1")
		}
		maxTokens = *req.MaxTokens
	}
	if err := CheckStops(req.Stop); err != nil {
		return nil, err
	}
	top := 0
	if req.TopLogprobs != nil {
		if !req.Logprobs {
			return nil, engine.Invalid("top_logprobs", "top_logprobs needs logprobs: true")
		}
		if err := CheckTopLogprobs("top_logprobs", *req.TopLogprobs); err != nil {
			return nil, err
		}
		top = *req.TopLogprobs
	}
	plan := &Plan{
		N: n, Thinking: thinking, Sampling: params, Tools: len(req.Tools) > 0, Continued: req.ContinueFinalMessage, Logprobs: req.Logprobs,
		Request: engine.Request{Prompt: prompt, MaxTokens: maxTokens, Stop: req.Stop, Sampling: params.Engine(), ReasoningBudget: -1,
			JSONSchema: schema, Grammar: grammar, Logprobs: req.Logprobs, TopLogprobs: top},
	}
	if reasoning {
		if err := p.setBudget(tok, plan, req.ThinkingBudget); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// setBudget gives the engine the reasoning tags, so that it counts the
// reasoning tokens (usage) and enforces the thinking budget.
func (p *Planner) setBudget(tok Tokenizer, plan *Plan, requested *int) error {
	budget := p.defaults.ThinkingBudget
	if requested != nil {
		if *requested < 0 {
			return engine.Invalid("thinking_budget", "thinking_budget must be 0 or more tokens")
		}
		budget = *requested
	}
	open, end, endTok, err := p.reasoningTags(tok)
	if err != nil {
		// Only an engine without Qwen3's vocabulary (the tests' fake) lacks
		// the tags; it can run without a budget, uncounted.
		if budget >= 0 {
			return err
		}
		return nil
	}
	if plan.Continued {
		open = -1 // the prompt opened the reasoning
	}
	r := &plan.Request
	r.ReasoningBudget, r.ReasoningStartToken, r.ReasoningEnd, r.ReasoningEndToken = budget, open, end, endTok
	return nil
}

// Render validates the messages, resolves the thinking switch and renders
// the Qwen3 prompt (POST /apply-template shows it); it reports whether the
// prompt is in thinking mode.
func (p *Planner) Render(req *Request, m *adapters.Manifest) (string, bool, error) {
	if err := checkMessages(req); err != nil {
		return "", false, err
	}
	thinking, err := req.Thinking.Resolve(p.ThinkingDefault(m))
	if err != nil {
		return "", false, engine.Invalid("enable_thinking", "%v", err)
	}
	prompt, err := render(req, m, thinking)
	return prompt, thinking, err
}

// ThinkingDefault is the thinking mode of a request that does not choose:
// the adapter manifest's, else the server's.
func (p *Planner) ThinkingDefault(m *adapters.Manifest) bool {
	if m != nil && m.EnableThinking != nil {
		return *m.EnableThinking
	}
	return p.defaults.EnableThinking
}

// ThinkingBudget is the server's default thinking budget (-1: none).
func (p *Planner) ThinkingBudget() int { return p.defaults.ThinkingBudget }

// ModeSampling is what a request without sampling fields runs with in the
// given mode under adapter manifest m (nil: the base model).
func (p *Planner) ModeSampling(m *adapters.Manifest, thinking bool) sampling.Params {
	return p.resolveSampling(sampling.Params{}, m, thinking)
}

// resolveSampling applies the precedence request > adapter manifest > the
// mode's preset > built-in.
func (p *Planner) resolveSampling(req sampling.Params, m *adapters.Manifest, thinking bool) sampling.Params {
	var ad sampling.Params
	if m != nil {
		ad = m.Sampling
	}
	preset := p.defaults.NonThinking
	if thinking {
		preset = p.defaults.Thinking
	}
	return sampling.Resolve(req, ad, preset, sampling.BuiltIn)
}

func checkMessages(req *Request) error {
	if len(req.Messages) == 0 {
		return engine.Invalid("messages", "messages must be a non-empty array")
	}
	return nil
}

// outputGrammar is the grammar and JSON schema that constrain the output:
// a forced tool_choice, or response_format. constrainedBy names the
// parameter that asked for it ("" when the output is free).
func outputGrammar(req *Request) (grammar string, schema []byte, constrainedBy string, err error) {
	grammar, schema, err = forcedToolCalls(req.Tools, req.ToolChoice)
	if err != nil {
		return "", nil, "", err
	}
	rf := req.ResponseFormat
	structured := rf != nil && rf.Type != "" && rf.Type != "text"
	if grammar != "" {
		if structured {
			return "", nil, "", engine.Invalid("response_format", "response_format cannot be combined with a forced tool_choice")
		}
		return grammar, schema, "tool_choice", nil
	}
	if !structured {
		return "", nil, "", nil
	}
	switch rf.Type {
	case "json_object":
		schema = []byte(`{"type":"object"}`)
	case "json_schema":
		if len(rf.Schema) == 0 {
			return "", nil, "", engine.Invalid("response_format", "response_format json_schema needs json_schema.schema")
		}
		schema = rf.Schema
	default:
		return "", nil, "", engine.Invalid("response_format", "response_format type %q: want text, json_object or json_schema", rf.Type)
	}
	return "", schema, "response_format", nil
}

// render builds the Qwen3 prompt: the adapter manifest's system prompt
// when the request has none, the tools unless tool_choice is "none" (the
// model is not told about them), the thinking switch.
func render(req *Request, m *adapters.Manifest, thinking bool) (string, error) {
	conv := qwen3.Conversation{AddGenerationPrompt: req.AddGenerationPrompt == nil || *req.AddGenerationPrompt, ContinueFinalMessage: req.ContinueFinalMessage}
	if strings.TrimSpace(string(req.ToolChoice)) != `"none"` {
		conv.Tools = req.Tools
	}
	if conv.ContinueFinalMessage {
		if conv.AddGenerationPrompt {
			// vLLM's words; add_generation_prompt defaults to true there too.
			return "", engine.Invalid("continue_final_message", "Cannot set both `continue_final_message` and `add_generation_prompt` to True.")
		}
		if last := req.Messages[len(req.Messages)-1]; last.Role != "assistant" {
			return "", engine.Invalid("continue_final_message", "continue_final_message continues the last message, which must be an assistant message (it is %q)", last.Role)
		}
	}
	if first := req.Messages[0].Role; m != nil && m.SystemPrompt != "" && first != "system" && first != "developer" {
		conv.Messages = append(conv.Messages, qwen3.Message{Role: "system", Content: m.SystemPrompt})
	}
	for i, msg := range req.Messages {
		switch msg.Role {
		case "system", "user", "assistant", "tool":
		case "developer": // OpenAI's newer name for system
			msg.Role = "system"
		default:
			return "", engine.Invalid(fmt.Sprintf("messages[%d].role", i), "unknown role %q (system, user, assistant, tool)", msg.Role)
		}
		conv.Messages = append(conv.Messages, msg)
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
		return "", engine.Invalid(param, "%v", err)
	}
	return prompt, nil
}

// reasoningTags are the reasoning's opening tag and what the model writes
// to close it (qwen3.ReasoningEnd, with the "</think>" token), tokenized
// once.
func (p *Planner) reasoningTags(tok Tokenizer) (open int32, end []int32, endTok int32, err error) {
	p.tagsOnce.Do(func() {
		toks, err := tok.Tokenize(qwen3.ThinkOpen+qwen3.ReasoningEnd, true)
		if err != nil || len(toks) != 4 {
			p.tagsErr = fmt.Errorf("cannot tokenize the reasoning tags: %v %v", toks, err)
			return
		}
		p.tags = toks
	})
	if p.tagsErr != nil {
		return 0, nil, 0, p.tagsErr
	}
	return p.tags[0], p.tags[1:], p.tags[2], nil
}
