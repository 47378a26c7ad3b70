// Package openai holds the OpenAI-compatible wire types, apart from the
// handlers that use them.
package openai

// Model is one entry of GET /v1/models.
type Model struct {
	ID      string  `json:"id"`
	Object  string  `json:"object"`
	Created int64   `json:"created"`
	OwnedBy string  `json:"owned_by"`
	Parent  *string `json:"parent,omitempty"`
	// MaxModelLen is the context per sequence (vLLM's field name).
	MaxModelLen int `json:"max_model_len,omitempty"`
}

// ModelList is the body of GET /v1/models.
type ModelList struct {
	Object string  `json:"object"`
	Data   []Model `json:"data"`
}
