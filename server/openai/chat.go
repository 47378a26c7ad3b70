package openai

import (
	"encoding/json"
	"fmt"
	"strings"
)

// ChatRequest is the body of POST /v1/chat/completions, with the extension
// fields vLLM, llama-server and Ollama clients send.
type ChatRequest struct {
	Model               string         `json:"model"`
	Messages            []ChatMessage  `json:"messages"`
	Stream              bool           `json:"stream"`
	StreamOptions       *StreamOptions `json:"stream_options"`
	MaxTokens           *int           `json:"max_tokens"`
	MaxCompletionTokens *int           `json:"max_completion_tokens"`
	SamplingFields
	Stop               StringOrList      `json:"stop"`
	N                  *int              `json:"n"`
	Tools              []json.RawMessage `json:"tools"`
	ChatTemplateKwargs *TemplateKwargs   `json:"chat_template_kwargs"`
	EnableThinking     *bool             `json:"enable_thinking"`
	ReasoningEffort    *string           `json:"reasoning_effort"`
	Think              json.RawMessage   `json:"think"`
	ThinkingBudget     *int              `json:"thinking_budget"`
	ToolChoice         json.RawMessage   `json:"tool_choice"`
	Lora               []LoraRef         `json:"lora"`
	ResponseFormat     *ResponseFormat   `json:"response_format"`
	Logprobs           *bool             `json:"logprobs"`
	TopLogprobs        *int              `json:"top_logprobs"`
	// Template controls, as vLLM has them: add_generation_prompt (default
	// true) and continue_final_message (the assistant prefill).
	AddGenerationPrompt  *bool `json:"add_generation_prompt"`
	ContinueFinalMessage bool  `json:"continue_final_message"`
}

// SamplingFields are the sampling parameters both chat and completions
// requests accept.
type SamplingFields struct {
	Temperature      *float32 `json:"temperature"`
	TopP             *float32 `json:"top_p"`
	TopK             *int     `json:"top_k"`
	MinP             *float32 `json:"min_p"`
	PresencePenalty  *float32 `json:"presence_penalty"`
	FrequencyPenalty *float32 `json:"frequency_penalty"`
	RepeatPenalty    *float32 `json:"repeat_penalty"`
	Seed             *int64   `json:"seed"`
}

// ResponseFormat is response_format: {"type": "text" | "json_object" |
// "json_schema", "json_schema": {"name", "schema", "strict"}}.
type ResponseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name   string          `json:"name"`
		Schema json.RawMessage `json:"schema"`
	} `json:"json_schema"`
}

// LoraRef names an adapter and its scale in a request's "lora" list
// (llama-server's convention; scale defaults to the adapter's own).
type LoraRef struct {
	Name  string   `json:"name"`
	Scale *float32 `json:"scale,omitempty"` // nil: the adapter's own
}

// TemplateKwargs is chat_template_kwargs.
type TemplateKwargs struct {
	EnableThinking *bool `json:"enable_thinking"`
}

// StreamOptions is stream_options.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// ChatMessage is one input message. Content is a string, an array of
// parts, or null.
type ChatMessage struct {
	Role             string          `json:"role"`
	Content          json.RawMessage `json:"content"`
	ReasoningContent *string         `json:"reasoning_content"`
	Reasoning        *string         `json:"reasoning"`
	ToolCalls        []ToolCall      `json:"tool_calls"`
	ToolCallID       string          `json:"tool_call_id,omitempty"`
	Name             string          `json:"name,omitempty"`
}

// ToolCall is an assistant tool call (input and output).
type ToolCall struct {
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type"`
	Function FunctionCall `json:"function"`
}

// FunctionCall holds the name and the arguments (a JSON string on the wire
// in OpenAI's API; objects are accepted too).
type FunctionCall struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

// Text flattens content: a string, or the text parts of an array joined.
func (m ChatMessage) Text() (string, error) {
	raw := strings.TrimSpace(string(m.Content))
	if raw == "" || raw == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			return "", err
		}
		return s, nil
	}
	var parts []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if err := json.Unmarshal([]byte(raw), &parts); err != nil {
		return "", fmt.Errorf("content must be a string or an array of text parts")
	}
	var b strings.Builder
	for i, p := range parts {
		if p.Type != "text" || p.Text == nil {
			return "", fmt.Errorf("content part %d: only text parts are supported (got type %q)", i, p.Type)
		}
		b.WriteString(*p.Text)
	}
	return b.String(), nil
}

// StringOrList accepts "stop": "x" or ["x", "y"].
type StringOrList []string

// UnmarshalJSON implements json.Unmarshaler.
func (s *StringOrList) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = nil
		return nil
	}
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("must be a string or an array of strings")
	}
	*s = many
	return nil
}

// ChatResponse is a non-streamed chat completion.
type ChatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []ChatChoice `json:"choices"`
	Usage   *Usage       `json:"usage,omitempty"`
}

// ChatChoice is one choice.
type ChatChoice struct {
	Index        int              `json:"index"`
	Message      *ResponseMessage `json:"message,omitempty"`
	Delta        *ResponseMessage `json:"delta,omitempty"`
	Logprobs     *ChatLogprobs    `json:"logprobs,omitempty"`
	FinishReason *string          `json:"finish_reason"`
}

// ChatLogprobs is a choice's logprobs: one entry per generated token,
// reasoning included.
type ChatLogprobs struct {
	Content []ChatTokenLogprob `json:"content"`
}

// ChatTokenLogprob is a token, its logprob, its UTF-8 bytes and the best
// alternatives at its position.
type ChatTokenLogprob struct {
	TopLogprob
	TopLogprobs []TopLogprob `json:"top_logprobs"`
}

// TopLogprob is a token with its logprob and bytes.
type TopLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

// ResponseMessage is the assistant's message (or a streamed delta). The
// reasoning is in reasoning_content (vLLM, DeepSeek), duplicated as
// reasoning for clients that read that name.
type ResponseMessage struct {
	Role             string     `json:"role,omitempty"`
	Content          *string    `json:"content,omitempty"`
	ReasoningContent *string    `json:"reasoning_content,omitempty"`
	Reasoning        *string    `json:"reasoning,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
}

// Usage counts tokens.
type Usage struct {
	PromptTokens            int                     `json:"prompt_tokens"`
	CompletionTokens        int                     `json:"completion_tokens"`
	TotalTokens             int                     `json:"total_tokens"`
	PromptTokensDetails     PromptTokensDetails     `json:"prompt_tokens_details"`
	CompletionTokensDetails CompletionTokensDetails `json:"completion_tokens_details"`
}

// PromptTokensDetails reports prompt-cache reuse.
type PromptTokensDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

// CompletionTokensDetails reports reasoning tokens.
type CompletionTokensDetails struct {
	ReasoningTokens int `json:"reasoning_tokens"`
}
