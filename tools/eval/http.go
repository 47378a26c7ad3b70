package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/qwen3-lora/qwen3-server/server/openai"
)

// HTTPGenerator runs items against a running server's OpenAI chat
// completions API (ours, or any that takes enable_thinking and returns
// reasoning_content); the model is the adapter's name there, and "base"
// stands for the server's own model (the first of /v1/models).
type HTTPGenerator struct {
	// URL is the API base: http://host:port or http://host:port/v1.
	URL     string
	APIKey  string
	Client  *http.Client
	Request Request

	baseOnce sync.Once
	base     string
	baseErr  error
}

// APIError is a server's error reply.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("server answered %d: %s", e.Status, e.Message) }

func (g *HTTPGenerator) api() string {
	u := strings.TrimRight(g.URL, "/")
	if !strings.HasSuffix(u, "/v1") {
		u += "/v1"
	}
	return u
}

func (g *HTTPGenerator) client() *http.Client {
	if g.Client != nil {
		return g.Client
	}
	return http.DefaultClient
}

func (g *HTTPGenerator) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.api()+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if g.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+g.APIKey)
	}
	resp, err := g.client().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			msg = e.Error.Message
		}
		return &APIError{Status: resp.StatusCode, Message: msg}
	}
	return json.Unmarshal(b, out)
}

// Base is the server's own model name.
func (g *HTTPGenerator) Base(ctx context.Context) (string, error) {
	g.baseOnce.Do(func() {
		var list openai.ModelList
		if g.baseErr = g.do(ctx, http.MethodGet, "/models", nil, &list); g.baseErr == nil {
			if len(list.Data) == 0 {
				g.baseErr = fmt.Errorf("%s/models lists no model", g.api())
			} else {
				g.base = list.Data[0].ID
			}
		}
	})
	return g.base, g.baseErr
}

func (g *HTTPGenerator) Generate(ctx context.Context, model string, it *Item, thinking bool) (*Output, error) {
	if model == "base" {
		b, err := g.Base(ctx)
		if err != nil {
			return nil, err
		}
		model = b
	}
	body := openai.ChatRequest{Model: model, EnableThinking: &thinking, ChatTemplateKwargs: &openai.TemplateKwargs{EnableThinking: &thinking},
		ThinkingBudget: g.Request.ThinkingBudget, SamplingFields: openai.SamplingFields{Temperature: g.Request.Sampling.Temperature,
			TopP: g.Request.Sampling.TopP, TopK: g.Request.Sampling.TopK, MinP: g.Request.Sampling.MinP}}
	if g.Request.MaxTokens > 0 {
		mt := g.Request.MaxTokens
		body.MaxTokens = &mt
	}
	for _, m := range it.Messages {
		content, _ := json.Marshal(m.Content)
		body.Messages = append(body.Messages, openai.ChatMessage{Role: m.Role, Content: content})
	}
	var resp openai.ChatResponse
	if err := g.do(ctx, http.MethodPost, "/chat/completions", body, &resp); err != nil {
		return nil, err
	}
	if len(resp.Choices) == 0 || resp.Choices[0].Message == nil {
		return nil, fmt.Errorf("the server returned no choice")
	}
	c := resp.Choices[0]
	out := &Output{}
	if c.FinishReason != nil {
		out.FinishReason = *c.FinishReason
	}
	if u := resp.Usage; u != nil {
		out.PromptTokens, out.CompletionTokens, out.ReasoningTokens = u.PromptTokens, u.CompletionTokens, u.CompletionTokensDetails.ReasoningTokens
	}
	if c.Message.Content != nil {
		out.Answer = *c.Message.Content
	}
	if c.Message.ReasoningContent != nil {
		out.Reasoning = *c.Message.ReasoningContent
	}
	return out, nil
}
