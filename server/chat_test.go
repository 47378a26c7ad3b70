package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/fake"
	"github.com/qwen3-lora/qwen3-server/server/apierror"
)

func fakeServer(f *fake.Engine) *Server {
	s := newTestServer()
	s.SetEngine(f)
	return s
}

func TestChatErrors(t *testing.T) {
	user := `"messages":[{"role":"user","content":"hi"}]`
	cases := []struct {
		name   string
		body   string
		status int
		param  string
	}{
		{"malformed JSON", `{"messages":`, 400, ""},
		{"wrong type", `{"messages":"hi"}`, 400, "messages"},
		{"no messages", `{"messages":[]}`, 400, "messages"},
		{"unknown role", `{"messages":[{"role":"wizard","content":"x"}]}`, 400, "messages[0].role"},
		{"image part", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]}`, 400, "messages[0].content"},
		{"temperature too high", `{` + user + `,"temperature":3}`, 400, "temperature"},
		{"top_p zero", `{` + user + `,"top_p":0}`, 400, "top_p"},
		{"negative top_k", `{` + user + `,"top_k":-1}`, 400, "top_k"},
		{"max_tokens zero", `{` + user + `,"max_tokens":0}`, 400, "max_tokens"},
		{"n out of range", `{` + user + `,"n":17}`, 400, "n"},
		{"bad reasoning_effort", `{` + user + `,"reasoning_effort":"max"}`, 400, "enable_thinking"},
		{"negative thinking_budget", `{` + user + `,"thinking_budget":-5}`, 400, "thinking_budget"},
		{"stop wrong type", `{` + user + `,"stop":5}`, 400, ""},
		{"continue_final_message with the generation prompt", `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"a"}],"continue_final_message":true}`, 400, "continue_final_message"},
		{"continue_final_message after a user message", `{` + user + `,"continue_final_message":true,"add_generation_prompt":false}`, 400, "continue_final_message"},
		{"continue_final_message of rewritten content", `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"<think>r</think>a"}],"continue_final_message":true,"add_generation_prompt":false}`, 400, "continue_final_message"},
		{"continue_final_message in open reasoning, thinking off", `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"<think>\nI"}],"continue_final_message":true,"add_generation_prompt":false,"enable_thinking":false}`, 400, "continue_final_message"},
		{"continue_final_message in open reasoning, response_format", `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"<think>\nI"}],"continue_final_message":true,"add_generation_prompt":false,"response_format":{"type":"json_object"}}`, 400, "continue_final_message"},
		{"unknown model", `{"model":"gpt-9",` + user + `}`, 404, ""},
		{"body too large", `{` + user + `,"pad":"` + strings.Repeat("x", 2<<20) + `"}`, 413, ""},
	}
	s := fakeServer(fake.New("a"))
	for _, c := range cases {
		w := post(t, s, c.body)
		var body apierror.Body
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Errorf("%s: not an OpenAI error: %s", c.name, w.Body)
			continue
		}
		if w.Code != c.status || body.Error.Message == "" {
			t.Errorf("%s: %d %s", c.name, w.Code, w.Body)
		}
		if c.param != "" && (body.Error.Param == nil || *body.Error.Param != c.param) {
			t.Errorf("%s: param %v, want %s", c.name, body.Error.Param, c.param)
		}
	}
	// Still serving afterwards.
	if w := post(t, s, `{`+user+`}`); w.Code != 200 {
		t.Fatalf("after errors: %d %s", w.Code, w.Body)
	}
}

func TestChatOverloadedBeforeStream(t *testing.T) {
	f := fake.New("a")
	f.Err = engine.ErrOverloaded
	s := fakeServer(f)
	for _, stream := range []string{"false", "true"} {
		w := post(t, s, `{"messages":[{"role":"user","content":"hi"}],"stream":`+stream+`}`)
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Fatalf("stream=%s: %d %v %s", stream, w.Code, w.Header(), w.Body)
		}
	}
}

// An error after the stream started goes out in-band, then [DONE].
type failAfter struct {
	*fake.Engine
}

func (f failAfter) Generate(ctx context.Context, req *engine.Request, fn func(engine.Chunk) error) (*engine.Result, error) {
	fn(engine.Chunk{Token: 1, Text: "partial"})
	return nil, engine.Internal("decode failed")
}

func TestChatErrorAfterStreamStarted(t *testing.T) {
	s := newTestServer()
	s.SetEngine(failAfter{fake.New()})
	w := post(t, s, `{"messages":[{"role":"user","content":"hi"}],"stream":true,"enable_thinking":false}`)
	out := w.Body.String()
	if w.Code != 200 || !strings.Contains(out, `"content":"partial"`) || !strings.Contains(out, `data: {"error":{"message":"decode failed"`) || !strings.HasSuffix(out, "data: [DONE]\n\n") {
		t.Fatalf("%d\n%s", w.Code, out)
	}
}

func TestChatPromptAndParams(t *testing.T) {
	f := fake.New("<think>", "r", "</think>", "\n\n", "answer")
	s := fakeServer(f)
	w := post(t, s, `{"messages":[{"role":"system","content":"S"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],"stop":"x","max_completion_tokens":7,"seed":3,"presence_penalty":0.5}`)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	got := f.Requests[0]
	if got.Prompt != "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nab<|im_end|>\n<|im_start|>assistant\n" {
		t.Fatalf("prompt %q", got.Prompt)
	}
	if got.MaxTokens != 7 || len(got.Stop) != 1 || got.Stop[0] != "x" || got.Sampling.Seed == nil || *got.Sampling.Seed != 3 || got.Sampling.PresencePenalty != 0.5 || got.Sampling.Temperature != 0.6 {
		t.Fatalf("request %+v", got)
	}
	if !strings.Contains(w.Body.String(), `"reasoning_content":"r"`) || !strings.Contains(w.Body.String(), `"content":"answer"`) {
		t.Fatalf("%s", w.Body)
	}
}

func TestChatNChoices(t *testing.T) {
	f := fake.New("<think>", "r", "</think>", "a")
	s := fakeServer(f)
	w := post(t, s, `{"messages":[{"role":"user","content":"hi"}],"n":3,"seed":10}`)
	var res struct {
		Choices []struct {
			Index   int `json:"index"`
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil || len(res.Choices) != 3 || res.Usage.CompletionTokens != 12 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	seeds := map[uint32]bool{}
	for i, c := range res.Choices {
		if c.Index != i || c.Message.Content != "a" {
			t.Fatalf("%s", w.Body)
		}
		seeds[*f.Requests[i].Sampling.Seed] = true
	}
	if len(seeds) != 3 || !seeds[10] || !seeds[12] {
		t.Fatalf("seeds %v", seeds)
	}
	out := post(t, s, `{"messages":[{"role":"user","content":"hi"}],"n":2,"stream":true}`).Body.String()
	if strings.Count(out, `"finish_reason":"stop"`) != 2 || !strings.Contains(out, `"index":1,"delta":{"content":"a"}`) {
		t.Fatalf("%s", out)
	}
}
