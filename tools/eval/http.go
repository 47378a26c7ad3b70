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

	"github.com/qwen3-lora/qwen3-server/sampling"
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
		var list struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
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

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatBody struct {
	Model          string        `json:"model"`
	Messages       []chatMessage `json:"messages"`
	MaxTokens      *int          `json:"max_tokens,omitempty"`
	EnableThinking bool          `json:"enable_thinking"`
	TemplateKwargs struct {
		EnableThinking bool `json:"enable_thinking"`
	} `json:"chat_template_kwargs"`
	ThinkingBudget *int `json:"thinking_budget,omitempty"`
	sampling.Params
}

func (g *HTTPGenerator) Generate(ctx context.Context, model string, it *Item, thinking bool) (*Output, error) {
	if model == "base" {
		b, err := g.Base(ctx)
		if err != nil {
			return nil, err
		}
		model = b
	}
	body := chatBody{Model: model, EnableThinking: thinking, ThinkingBudget: g.Request.ThinkingBudget, Params: g.Request.Sampling}
	body.TemplateKwargs.EnableThinking = thinking
	if g.Request.MaxTokens > 0 {
		mt := g.Request.MaxTokens
		body.MaxTokens = &mt
	}
	for _, m := range it.Messages {
		body.Messages = append(body.Messages, chatMessage{Role: m.Role, Content: m.Content})
	}
	var resp struct {
		Choices []struct {
			Message struct {
				Content          *string `json:"content"`
				ReasoningContent *string `json:"reasoning_content"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			PromptTokens            int `json:"prompt_tokens"`
			CompletionTokens        int `json:"completion_tokens"`
			CompletionTokensDetails struct {
				ReasoningTokens int `json:"reasoning_tokens"`
			} `json:"completion_tokens_details"`
		} `json:"usage"`
	}
	if err := g.do(ctx, http.MethodPost, "/chat/completions", body, &resp); err != nil {
		return nil, err
	}
	if len(resp.Choices) == 0 {
		return nil, fmt.Errorf("the server returned no choice")
	}
	c := resp.Choices[0]
	out := &Output{FinishReason: c.FinishReason, PromptTokens: resp.Usage.PromptTokens, CompletionTokens: resp.Usage.CompletionTokens,
		ReasoningTokens: resp.Usage.CompletionTokensDetails.ReasoningTokens}
	if c.Message.Content != nil {
		out.Answer = *c.Message.Content
	}
	if c.Message.ReasoningContent != nil {
		out.Reasoning = *c.Message.ReasoningContent
	}
	return out, nil
}
