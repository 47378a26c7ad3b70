package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/qwen3-lora/qwen3-server/engine"
)

// chainServer serves the chain test model, whose output is known: after the
// generation prompt "<think>Let me think.</think>\n\nHello!<|im_end|>", after
// the empty think block "Hello!<|im_end|>". So template → engine → parser →
// API can be asserted exactly.
func chainServer(t *testing.T) *Server {
	s, _ := engineServer(t, "tiny-chain.gguf", 2, 256)
	return s
}

type chatResult struct {
	Choices []struct {
		Message struct {
			Content          *string `json:"content"`
			ReasoningContent *string `json:"reasoning_content"`
			Reasoning        *string `json:"reasoning"`
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

func post(t *testing.T, s *Server, body string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	s.Handler().ServeHTTP(w, r)
	return w
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func TestChainModelEndToEnd(t *testing.T) {
	s := chainServer(t)
	user := `"messages":[{"role":"user","content":"Hi"}]`
	cases := []struct {
		name, body                     string
		reasoning, content, finish     string
		completionTokens, reasoningTok int
		header                         string
	}{
		{"thinking on by default", `{` + user + `}`, "Let me think.", "Hello!", "stop", 10, 4, "temperature=0.6 top_p=0.95 top_k=20"},
		{"chat_template_kwargs off", `{` + user + `,"chat_template_kwargs":{"enable_thinking":false}}`, "<nil>", "Hello!", "stop", 3, 0, "temperature=0.7 top_p=0.8 top_k=20"},
		{"reasoning_effort none", `{` + user + `,"reasoning_effort":"none"}`, "<nil>", "Hello!", "stop", 3, 0, "temperature=0.7"},
		{"ollama think false", `{` + user + `,"think":false}`, "<nil>", "Hello!", "stop", 3, 0, "temperature=0.7"},
		{"request overrides preset", `{` + user + `,"temperature":0.2,"top_k":5}`, "Let me think.", "Hello!", "stop", 10, 4, "temperature=0.2 top_p=0.95 top_k=5"},
		{"max tokens inside the reasoning", `{` + user + `,"max_tokens":3}`, "Let me", "", "length", 3, 2, ""},
		// The budget counts the tokens after the model's own <think>; the
		// closing "\n</think>\n\n" is the engine's and is not counted.
		{"thinking budget closes the reasoning", `{` + user + `,"thinking_budget":2}`, "Let me", "Hello!", "stop", 9, 2, ""},
		{"thinking budget 1", `{` + user + `,"thinking_budget":1}`, "Let", "Hello!", "stop", 8, 1, ""},
		{"thinking budget 0", `{` + user + `,"thinking_budget":0}`, "<nil>", "Hello!", "stop", 7, 0, ""},
		{"thinking budget the reasoning's length", `{` + user + `,"thinking_budget":4}`, "Let me think.", "Hello!", "stop", 10, 4, ""},
		{"stop string in the answer", `{` + user + `,"stop":["lo!"]}`, "Let me think.", "Hel", "stop", 9, 4, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := post(t, s, c.body)
			if w.Code != 200 {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			var res chatResult
			if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			m := res.Choices[0].Message
			if deref(m.ReasoningContent) != c.reasoning || deref(m.Content) != c.content || res.Choices[0].FinishReason != c.finish {
				t.Fatalf("got reasoning %q content %q finish %s; want %q %q %s\n%s", deref(m.ReasoningContent), deref(m.Content), res.Choices[0].FinishReason, c.reasoning, c.content, c.finish, w.Body)
			}
			if deref(m.Reasoning) != deref(m.ReasoningContent) {
				t.Fatalf("reasoning alias differs: %q", deref(m.Reasoning))
			}
			if res.Usage.CompletionTokens != c.completionTokens || res.Usage.CompletionTokensDetails.ReasoningTokens != c.reasoningTok {
				t.Fatalf("usage %+v, want %d completion / %d reasoning", res.Usage, c.completionTokens, c.reasoningTok)
			}
			if !strings.Contains(w.Header().Get(headerSampling), c.header) {
				t.Fatalf("%s: %q lacks %q", headerSampling, w.Header().Get(headerSampling), c.header)
			}
		})
	}
}

func TestChainModelStreaming(t *testing.T) {
	s := chainServer(t)
	for _, thinking := range []bool{true, false} {
		body := `{"messages":[{"role":"user","content":"Hi"}],"stream":true,"stream_options":{"include_usage":true},"enable_thinking":` + map[bool]string{true: "true", false: "false"}[thinking] + `}`
		st := postStream(t, s, body)
		want := "Let me think."
		if !thinking {
			want = ""
		}
		if st.reasoning != want || st.content != "Hello!" || st.finish != "stop" || st.usage == nil || !st.done {
			t.Fatalf("thinking=%v: %+v", thinking, st)
		}
	}
}

// streamed is a chat stream's events put together.
type streamed struct {
	reasoning, content, finish string
	usage                      *struct {
		CompletionTokens        int `json:"completion_tokens"`
		CompletionTokensDetails struct {
			ReasoningTokens int `json:"reasoning_tokens"`
		} `json:"completion_tokens_details"`
	}
	done bool
	body string
}

// postStream posts a streaming chat request and reads its SSE events.
func postStream(t *testing.T, s *Server, body string) streamed {
	t.Helper()
	w := post(t, s, body)
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream") {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	st := streamed{body: w.Body.String()}
	sc := bufio.NewScanner(bytes.NewReader(w.Body.Bytes()))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("not an SSE data line: %q", line)
		}
		if data == "[DONE]" {
			st.done = true
			continue
		}
		var ev struct {
			Choices []struct {
				Delta struct {
					Content          *string `json:"content"`
					ReasoningContent *string `json:"reasoning_content"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens        int `json:"completion_tokens"`
				CompletionTokensDetails struct {
					ReasoningTokens int `json:"reasoning_tokens"`
				} `json:"completion_tokens_details"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Usage != nil {
			st.usage = ev.Usage
		}
		for _, ch := range ev.Choices {
			if ch.Delta.ReasoningContent != nil {
				st.reasoning += *ch.Delta.ReasoningContent
			}
			if ch.Delta.Content != nil {
				st.content += *ch.Delta.Content
			}
			if ch.FinishReason != nil {
				st.finish = *ch.FinishReason
			}
		}
	}
	return st
}

// continue_final_message end to end: the chain model continues the
// prefilled part from its last token, and the response holds only the
// continuation, parsed from where the prefill left off.
func TestChainModelContinueFinalMessage(t *testing.T) {
	s := chainServer(t)
	msgs := func(prefill string) string {
		return `"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":` + prefill + `}],"add_generation_prompt":false,"continue_final_message":true`
	}
	cases := []struct {
		name, body                     string
		reasoning, content             string
		completionTokens, reasoningTok int
	}{
		// The prompt ends "<think>\nLet me": the model goes on " think." and
		// closes the reasoning.
		{"inside the reasoning", msgs(`"<think>\nLet me"`), " think.", "Hello!", 7, 2},
		// The budget counts the continued reasoning from its first token.
		{"inside the reasoning, budget 1", msgs(`"<think>\nLet me"`) + `,"thinking_budget":1`, " think", "Hello!", 7, 1},
		{"inside the answer", msgs(`"Hello"`), "<nil>", "!", 2, 0},
		{"inside the answer, thinking off", msgs(`"Hello"`) + `,"enable_thinking":false`, "<nil>", "!", 2, 0},
		{"inside the answer, reasoning_content given", msgs(`"Hello","reasoning_content":"Let me think."`), "<nil>", "!", 2, 0},
		{"right after the reasoning", msgs(`"<think>\nLet me think.\n</think>\n\n"`), "<nil>", "Hello!", 3, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := post(t, s, `{`+c.body+`}`)
			var res chatResult
			if err := json.Unmarshal(w.Body.Bytes(), &res); w.Code != 200 || err != nil {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			m := res.Choices[0].Message
			if deref(m.ReasoningContent) != c.reasoning || deref(m.Content) != c.content || res.Choices[0].FinishReason != "stop" {
				t.Fatalf("got reasoning %q content %q; want %q %q\n%s", deref(m.ReasoningContent), deref(m.Content), c.reasoning, c.content, w.Body)
			}
			if res.Usage.CompletionTokens != c.completionTokens || res.Usage.CompletionTokensDetails.ReasoningTokens != c.reasoningTok {
				t.Fatalf("usage %+v, want %d completion / %d reasoning", res.Usage, c.completionTokens, c.reasoningTok)
			}
			st := postStream(t, s, `{`+c.body+`,"stream":true,"stream_options":{"include_usage":true}}`)
			if want := strings.TrimPrefix(c.reasoning, "<nil>"); st.reasoning != want || st.content != c.content || st.finish != "stop" || !st.done ||
				st.usage == nil || st.usage.CompletionTokensDetails.ReasoningTokens != c.reasoningTok {
				t.Fatalf("stream: %+v", st)
			}
		})
	}
}

// The thinking budget through the API on the random model: the reasoning is
// exactly the first N tokens the model writes (greedy, as without a
// budget), and reasoning_tokens says N.
func TestThinkingBudgetRandomModel(t *testing.T) {
	s, e := engineServer(t, "tiny-random.gguf", 1, 256)
	var tmpl struct{ Prompt string }
	user := `"messages":[{"role":"user","content":"Why is the sky blue?"}]`
	if w := do(s, "POST", "/apply-template", `{`+user+`}`); w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &tmpl) != nil {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var free []int32
	if _, err := e.Generate(context.Background(), &engine.Request{Prompt: tmpl.Prompt, MaxTokens: 12}, func(c engine.Chunk) error {
		free = append(free, c.Token)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 3, 8} {
		w := post(t, s, fmt.Sprintf(`{%s,"temperature":0,"thinking_budget":%d,"max_tokens":%d}`, user, n, n+6))
		var res chatResult
		if err := json.Unmarshal(w.Body.Bytes(), &res); w.Code != 200 || err != nil {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		want := strings.TrimSpace(e.Detokenize(free[:n]))
		if got := deref(res.Choices[0].Message.ReasoningContent); got != want || res.Usage.CompletionTokensDetails.ReasoningTokens != n {
			t.Fatalf("budget %d: reasoning %q (%d tokens), want %q (%d tokens: %v)", n, got, res.Usage.CompletionTokensDetails.ReasoningTokens, want, n, free[:n])
		}
	}
}
