package openai

import (
	"encoding/json"
	"fmt"
)

// CompletionRequest is the body of POST /v1/completions.
type CompletionRequest struct {
	Model         string         `json:"model"`
	Prompt        Prompts        `json:"prompt"`
	Stream        bool           `json:"stream"`
	StreamOptions *StreamOptions `json:"stream_options"`
	MaxTokens     *int           `json:"max_tokens"`
	SamplingFields
	Stop     StringOrList `json:"stop"`
	N        *int         `json:"n"`
	Echo     bool         `json:"echo"`
	Logprobs *int         `json:"logprobs"`
	// IgnoreEOS keeps generating past end-of-generation tokens (vLLM's
	// extension; benchmarks use it to get fixed output lengths).
	IgnoreEOS bool      `json:"ignore_eos"`
	Lora      []LoraRef `json:"lora"`
}

// Prompts is "prompt": a string, an array of strings (a batch), an array of
// token ids, or an array of such arrays.
type Prompts struct {
	Texts  []string
	Tokens [][]int32
}

// Len is the number of prompts.
func (p Prompts) Len() int { return len(p.Texts) + len(p.Tokens) }

// UnmarshalJSON implements json.Unmarshaler.
func (p *Prompts) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		p.Texts = []string{one}
		return nil
	}
	var many []string
	if json.Unmarshal(b, &many) == nil {
		p.Texts = many
		return nil
	}
	var toks []int32
	if json.Unmarshal(b, &toks) == nil {
		p.Tokens = [][]int32{toks}
		return nil
	}
	var batches [][]int32
	if json.Unmarshal(b, &batches) == nil {
		p.Tokens = batches
		return nil
	}
	return fmt.Errorf("must be a string, an array of strings, or token ids")
}

// CompletionResponse is a (streamed or not) text completion.
type CompletionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []CompletionChoice `json:"choices"`
	Usage   *Usage             `json:"usage,omitempty"`
}

// CompletionChoice is one prompt's result.
type CompletionChoice struct {
	Index        int                 `json:"index"`
	Text         string              `json:"text"`
	Logprobs     *CompletionLogprobs `json:"logprobs"`
	FinishReason *string             `json:"finish_reason"`
}

// CompletionLogprobs is the legacy logprobs object: parallel lists, one
// entry per token of text. A prompt's first token (echo) has a null logprob
// and a null top_logprobs entry; text_offset counts characters in text.
type CompletionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []*float64           `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

// TokenizeRequest is llama-server's /tokenize body.
type TokenizeRequest struct {
	Content    string `json:"content"`
	AddSpecial bool   `json:"add_special"`
	// ParseSpecial: control-token text such as <|im_start|> becomes single
	// tokens (default true, as chat prompts need).
	ParseSpecial *bool `json:"parse_special"`
}

// TokenizeResponse is /tokenize's answer.
type TokenizeResponse struct {
	Tokens []int32 `json:"tokens"`
}

// DetokenizeRequest is /detokenize's body.
type DetokenizeRequest struct {
	Tokens []int32 `json:"tokens"`
}

// DetokenizeResponse is /detokenize's answer.
type DetokenizeResponse struct {
	Content string `json:"content"`
}

// ApplyTemplateResponse is /apply-template's answer.
type ApplyTemplateResponse struct {
	Prompt string `json:"prompt"`
}
