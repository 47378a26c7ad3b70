// Package conversation turns an OpenAI-shaped chat request into an engine
// request, and the engine's output back into reasoning, answer and tool
// calls. It owns the thinking switch (resolved once per request), the Qwen3
// template rendering (in conversation/qwen3), the tool-call grammar of
// forced tool calls, the forced end of the reasoning when a thinking budget
// runs out, the mode presets and their precedence (through sampling), and
// the validation of every field it reads.
//
// It takes the neutral Request type below, not the wire types or gin's
// context: the HTTP server (server/) decodes, and offline tools (eval) build
// Requests directly. It must not import net/http, gin or server/; errors are
// engine.Errors of KindInvalid carrying the wire parameter at fault, which
// server/apierror maps to HTTP.
package conversation

import (
	"encoding/json"
	"sync"

	"github.com/qwen3-lora/qwen3-server/conversation/qwen3"
	"github.com/qwen3-lora/qwen3-server/sampling"
)

// Request is a chat request as the conversation layer sees it: the OpenAI
// chat fields (and the vLLM / llama-server / Ollama extensions) that shape
// the prompt and the generation, already decoded. Nil pointers mean "not
// set by the client".
type Request struct {
	// Messages with their content flattened to text (roles are checked
	// here: system, developer, user, assistant, tool).
	Messages []qwen3.Message
	// Tools are OpenAI tool definitions; ToolChoice the raw tool_choice.
	Tools      []json.RawMessage
	ToolChoice json.RawMessage
	// ResponseFormat is response_format; nil or type "text" is free text.
	ResponseFormat *ResponseFormat
	// Thinking holds every thinking switch the client may have sent.
	Thinking qwen3.ThinkingSwitch
	// Sampling are the request's own sampling fields (validated here).
	Sampling sampling.Params
	// N is the number of choices (default 1).
	N *int
	// MaxTokens is max_completion_tokens or else max_tokens.
	MaxTokens *int
	Stop      []string
	// Logprobs and TopLogprobs: the chosen tokens' log-probabilities, and
	// how many alternatives per token.
	Logprobs    bool
	TopLogprobs *int
	// ThinkingBudget caps the reasoning tokens (-1: no cap).
	ThinkingBudget *int
	// AddGenerationPrompt (default true) ends the prompt with the
	// assistant turn; ContinueFinalMessage instead continues the final
	// (assistant) message, as vLLM.
	AddGenerationPrompt  *bool
	ContinueFinalMessage bool
}

// ResponseFormat is response_format: "text", "json_object" or
// "json_schema" with its schema.
type ResponseFormat struct {
	Type   string
	Schema json.RawMessage // json_schema.schema
}

// Defaults are what the server's configuration says when a request does
// not: the thinking mode, the thinking budget and each mode's preset.
type Defaults struct {
	EnableThinking bool
	ThinkingBudget int // -1: none
	Thinking       sampling.Params
	NonThinking    sampling.Params
}

// Tokenizer is the part of the engine the planner needs: the reasoning
// tags are tokenized once, for the engine's thinking budget.
type Tokenizer interface {
	Tokenize(text string, parseSpecial bool) ([]int32, error)
}

// Planner plans requests for one served model: the reasoning tags are
// tokenized with the first engine it is given and kept.
type Planner struct {
	defaults Defaults

	tagsOnce sync.Once
	tags     []int32 // <think>, "\n", </think>, "\n\n"
	tagsErr  error
}

// NewPlanner returns a planner with the server's defaults.
func NewPlanner(d Defaults) *Planner { return &Planner{defaults: d} }
