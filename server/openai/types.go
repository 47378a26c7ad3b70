// Package openai holds the OpenAI-compatible wire types, apart from the
// handlers that use them.
package openai

import "github.com/qwen3-lora/qwen3-server/sampling"

// Model is one entry of GET /v1/models.
type Model struct {
	ID      string  `json:"id"`
	Object  string  `json:"object"`
	Created int64   `json:"created"`
	OwnedBy string  `json:"owned_by"`
	Parent  *string `json:"parent,omitempty"`
	// MaxModelLen is the context per sequence (vLLM's field name).
	MaxModelLen int `json:"max_model_len,omitempty"`
	// Defaults is this server's extension: what a request to this model
	// starts from when it sets nothing (an adapter's manifest over the
	// server's configuration), so that clients such as the chat page can
	// show the real values instead of a copy of them.
	Defaults *ModelDefaults `json:"defaults,omitempty"`
}

// ModelDefaults are a model's thinking switch, thinking budget (-1: none)
// and the sampling preset of each mode.
type ModelDefaults struct {
	EnableThinking bool            `json:"enable_thinking"`
	ThinkingBudget int             `json:"thinking_budget"`
	Thinking       sampling.Params `json:"thinking"`
	NonThinking    sampling.Params `json:"non_thinking"`
}

// ModelList is the body of GET /v1/models.
type ModelList struct {
	Object string  `json:"object"`
	Data   []Model `json:"data"`
}
