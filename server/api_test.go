package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qwen3-lora/qwen3-server/adapters"
	"github.com/qwen3-lora/qwen3-server/engine"

	"github.com/qwen3-lora/qwen3-server/configs"
	"github.com/qwen3-lora/qwen3-server/engine/fake"
	"github.com/qwen3-lora/qwen3-server/server/apierror"
)

func do(s *Server, method, path, body string, headers ...string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	s.Handler().ServeHTTP(w, r)
	return w
}

func TestToolCallsReturned(t *testing.T) {
	f := fake.New("<think>", "plan", "</think>", "\n\n", "<tool_call>\n{\"name\": \"get_weather\", ", "\"arguments\": {\"city\": \"杭州\"}}\n</tool_call>")
	s := fakeServer(f)
	tools := `"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]`
	w := post(t, s, `{"messages":[{"role":"user","content":"weather?"}],`+tools+`}`)
	var res struct {
		Choices []struct {
			Message struct {
				Content   *string `json:"content"`
				ToolCalls []struct {
					ID       string `json:"id"`
					Type     string `json:"type"`
					Function struct {
						Name      string `json:"name"`
						Arguments string `json:"arguments"`
					} `json:"function"`
				} `json:"tool_calls"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	ch := res.Choices[0]
	if ch.FinishReason != "tool_calls" || ch.Message.Content != nil || len(ch.Message.ToolCalls) != 1 {
		t.Fatalf("%s", w.Body)
	}
	tc := ch.Message.ToolCalls[0]
	if tc.Type != "function" || tc.Function.Name != "get_weather" || tc.Function.Arguments != `{"city":"杭州"}` || !strings.HasPrefix(tc.ID, "call_") {
		t.Fatalf("%+v", tc)
	}
	if !strings.Contains(f.Requests[0].Prompt, "# Tools") {
		t.Fatal("tools not in the prompt")
	}
	// streamed: a tool_calls delta and finish_reason tool_calls
	w = post(t, s, `{"messages":[{"role":"user","content":"weather?"}],"stream":true,`+tools+`}`)
	out := w.Body.String()
	if !strings.Contains(out, `"tool_calls":[{"index":0,"id":"call_`) || !strings.Contains(out, `"finish_reason":"tool_calls"`) || strings.Contains(out, "<tool_call>") {
		t.Fatalf("%s", out)
	}
	// tool_choice none: tools are not shown to the model, output is text
	post(t, s, `{"messages":[{"role":"user","content":"weather?"}],"tool_choice":"none",`+tools+`}`)
	if strings.Contains(f.Requests[2].Prompt, "# Tools") {
		t.Fatal("tool_choice none still rendered the tools")
	}
	// tool_choice required: a grammar of tool calls over the tools' schemas,
	// in non-thinking mode (the real engine's output: TestForcedToolChoiceGoSDK).
	if w := post(t, s, `{"messages":[{"role":"user","content":"x"}],"tool_choice":"required",`+tools+`}`); w.Code != 200 {
		t.Fatalf("tool_choice required: %d %s", w.Code, w.Body)
	}
	r := f.Requests[len(f.Requests)-1]
	if !strings.Contains(r.Grammar, `"<tool_call>\n" json "\n</tool_call>"`) || !strings.Contains(string(r.JSONSchema), `"const":"get_weather"`) ||
		!strings.HasSuffix(r.Prompt, "<think>\n\n</think>\n\n") {
		t.Fatalf("required: %+v", r)
	}
}

func TestResponseFormat(t *testing.T) {
	f := fake.New(`{"a": 1}`)
	s := fakeServer(f)
	w := post(t, s, `{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}`)
	if w.Code != 200 || string(f.Requests[0].JSONSchema) != `{"type":"object"}` || !strings.HasSuffix(f.Requests[0].Prompt, "<think>\n\n</think>\n\n") {
		t.Fatalf("%d %s %+v", w.Code, w.Body, f.Requests[0])
	}
	w = post(t, s, `{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object","properties":{"a":{"type":"integer"}}}}}}`)
	if w.Code != 200 || !strings.Contains(string(f.Requests[1].JSONSchema), `"a"`) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	for _, body := range []string{
		`{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"},"enable_thinking":true}`,
		`{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}}`,
		`{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"yaml"}}`,
	} {
		if w := post(t, s, body); w.Code != 400 || !strings.Contains(w.Body.String(), "response_format") {
			t.Errorf("%s: %d %s", body, w.Code, w.Body)
		}
	}
}

func TestCompletionsBatchInOrder(t *testing.T) {
	f := fake.New(" one", " two")
	s := fakeServer(f)
	w := do(s, "POST", "/v1/completions", `{"prompt":["a","b","c"],"max_tokens":5}`)
	var res struct {
		Object  string `json:"object"`
		Choices []struct {
			Index        int    `json:"index"`
			Text         string `json:"text"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if res.Object != "text_completion" || len(res.Choices) != 3 || res.Usage.CompletionTokens != 6 {
		t.Fatalf("%s", w.Body)
	}
	for i, c := range res.Choices {
		if c.Index != i || c.Text != " one two" || c.FinishReason != "stop" {
			t.Fatalf("choice %d: %+v", i, c)
		}
	}
	prompts := map[string]bool{}
	for _, r := range f.Requests {
		prompts[r.Prompt] = true
		if r.MaxTokens != 5 {
			t.Fatalf("max_tokens %d", r.MaxTokens)
		}
	}
	if len(prompts) != 3 {
		t.Fatalf("prompts %v", prompts)
	}
	// default max_tokens is 16, as in OpenAI's API
	do(s, "POST", "/v1/completions", `{"prompt":"x"}`)
	if got := f.Requests[len(f.Requests)-1].MaxTokens; got != 16 {
		t.Fatalf("default max_tokens %d", got)
	}
	w = do(s, "POST", "/v1/completions", `{"prompt":["a","b"],"stream":true}`)
	out := w.Body.String()
	if !strings.Contains(out, `"index":1,"text":" one"`) || strings.Count(out, `"finish_reason":"stop"`) != 2 || !strings.HasSuffix(out, "data: [DONE]\n\n") {
		t.Fatalf("%s", out)
	}
	for _, bad := range []string{`{}`, `{"prompt":[]}`, `{"prompt":5}`, `{"prompt":"x","max_tokens":0}`, `{"prompt":"x","logprobs":21}`} {
		if w := do(s, "POST", "/v1/completions", bad); w.Code != 400 {
			t.Errorf("%s: %d", bad, w.Code)
		}
	}
}

func TestTokenizeEndpoints(t *testing.T) {
	s := fakeServer(fake.New())
	if w := do(s, "POST", "/tokenize", `{"content":"a b c"}`); w.Code != 200 || w.Body.String() != `{"tokens":[0,1,2]}` {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if w := do(s, "POST", "/detokenize", `{"tokens":[1,2]}`); w.Code != 200 || w.Body.String() != `{"content":"w w"}` {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	w := do(s, "POST", "/apply-template", `{"messages":[{"role":"user","content":"hi"}],"enable_thinking":false}`)
	if w.Code != 200 || w.Body.String() != `{"prompt":"\u003c|im_start|\u003euser\nhi\u003c|im_end|\u003e\n\u003c|im_start|\u003eassistant\n\u003cthink\u003e\n\n\u003c/think\u003e\n\n"}` {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	// The template controls: no generation prompt; the final assistant
	// message left open; both at once refused as vLLM does.
	for body, want := range map[string]string{
		`{"messages":[{"role":"user","content":"hi"}],"add_generation_prompt":false}`:                                                                                  "<|im_start|>user\nhi<|im_end|>\n",
		`{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"<think>\nI should"}],"add_generation_prompt":false,"continue_final_message":true}`: "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n<think>\nI should",
	} {
		var got struct{ Prompt string }
		w := do(s, "POST", "/apply-template", body)
		if json.Unmarshal(w.Body.Bytes(), &got); w.Code != 200 || got.Prompt != want {
			t.Fatalf("%s: %d %s", body, w.Code, w.Body)
		}
	}
	w = do(s, "POST", "/apply-template", `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"a"}],"continue_final_message":true}`)
	if w.Code != 400 || !strings.Contains(w.Body.String(), "Cannot set both `continue_final_message` and `add_generation_prompt` to True.") {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}

func TestAuthCORSAndMetrics(t *testing.T) {
	cfg, _ := configs.Load(nil, nil)
	s := New(configs.ServerConfig{Addr: "127.0.0.1:0", MaxBodyBytes: 1 << 20, APIKeys: []string{"k1", "k2"}, CORSOrigins: []string{"http://app.example"}}, cfg.Sampling, nil)
	s.SetEngine(fake.New("x"))
	body := `{"messages":[{"role":"user","content":"hi"}]}`
	if w := do(s, "POST", "/v1/chat/completions", body); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "authentication_error") {
		t.Fatalf("no key: %d %s", w.Code, w.Body)
	}
	if w := do(s, "POST", "/v1/chat/completions", body, "Authorization", "Bearer nope"); w.Code != http.StatusUnauthorized {
		t.Fatalf("bad key: %d", w.Code)
	}
	if w := do(s, "POST", "/v1/chat/completions", body, "Authorization", "Bearer k2"); w.Code != 200 {
		t.Fatalf("good key: %d %s", w.Code, w.Body)
	}
	if w := do(s, "GET", "/health", ""); w.Code != 200 {
		t.Fatalf("health must not need a key: %d", w.Code)
	}
	w := do(s, "OPTIONS", "/v1/chat/completions", "", "Origin", "http://app.example", "Access-Control-Request-Method", "POST")
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "http://app.example" || !strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", w.Code, w.Header())
	}
	if w := do(s, "GET", "/health", "", "Origin", "http://evil.example"); w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS allowed an unlisted origin")
	}
	m := do(s, "GET", "/metrics", "").Body.String()
	for _, want := range []string{
		`qwen3_requests_total{route="/v1/chat/completions",status="401"} 2`,
		`qwen3_requests_total{route="/v1/chat/completions",status="200"} 1`,
		"qwen3_completion_tokens_total 1",
		"qwen3_time_to_first_token_seconds_count 1",
		"# TYPE qwen3_inter_token_latency_seconds histogram",
		"qwen3_queue_depth 0",
		"qwen3_slots 4",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
}

type dummyAdapter struct{}

func (dummyAdapter) Close() {}

type fakeLoader struct{}

func (fakeLoader) LoadAdapter(string) (engine.Adapter, error) { return dummyAdapter{}, nil }

// An adapter's adapter.yaml supplies its thinking default, system prompt
// and sampling, between the request's fields and the mode presets.
func TestAdapterManifest(t *testing.T) {
	f := fake.New("a")
	s := fakeServer(f)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "med.gguf"), []byte("GGUF"), 0o644)
	os.WriteFile(filepath.Join(root, "med.adapter.yaml"), []byte("enable_thinking: false\nsystem_prompt: 你是医学专家。\nsampling:\n  temperature: 0.3\n"), 0o644)
	os.WriteFile(filepath.Join(root, "bad.gguf"), []byte("GGUF"), 0o644)
	os.WriteFile(filepath.Join(root, "bad.adapter.yaml"), []byte("temprature: 1\n"), 0o644)
	reg, err := adapters.NewRegistry(fakeLoader{}, []string{root}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.SetAdapters(reg)
	if w := do(s, "POST", "/v1/adapters", `{"name":"med","path":"med.gguf"}`); w.Code != 201 || !strings.Contains(w.Body.String(), `"system_prompt"`) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if w := do(s, "POST", "/v1/adapters", `{"name":"bad","path":"bad.gguf"}`); w.Code != 400 || !strings.Contains(w.Body.String(), "temprature") {
		t.Fatalf("bad manifest: %d %s", w.Code, w.Body)
	}
	w := post(t, s, `{"model":"med","messages":[{"role":"user","content":"头痛"}]}`)
	got := f.Requests[len(f.Requests)-1]
	if w.Code != 200 || !strings.HasPrefix(got.Prompt, "<|im_start|>system\n你是医学专家。<|im_end|>\n") || !strings.HasSuffix(got.Prompt, "<think>\n\n</think>\n\n") {
		t.Fatalf("%d prompt %q", w.Code, got.Prompt)
	}
	if h := w.Header().Get(headerSampling); !strings.Contains(h, "temperature=0.3 top_p=0.8") {
		t.Fatalf("manifest sampling over the non-thinking preset: %s", h)
	}
	// the request still wins
	w = post(t, s, `{"model":"med","messages":[{"role":"system","content":"mine"},{"role":"user","content":"x"}],"temperature":0.9,"enable_thinking":true}`)
	got = f.Requests[len(f.Requests)-1]
	if !strings.Contains(w.Header().Get(headerSampling), "temperature=0.9 top_p=0.95") || strings.Contains(got.Prompt, "医学") || strings.HasSuffix(got.Prompt, "</think>\n\n") {
		t.Fatalf("%s %q", w.Header().Get(headerSampling), got.Prompt)
	}
	// the base model is unaffected
	post(t, s, `{"messages":[{"role":"user","content":"x"}]}`)
	if got = f.Requests[len(f.Requests)-1]; strings.Contains(got.Prompt, "医学") || len(got.Adapters) != 0 {
		t.Fatalf("base: %+v", got)
	}
}

// keyedServer is a server on the fake engine with the given keys and an
// adapter folder holding a.gguf and b.gguf (the fake loader accepts any file).
func keyedServer(t *testing.T, sc configs.ServerConfig) (*Server, string) {
	t.Helper()
	cfg, _ := configs.Load(nil, nil)
	sc.Addr, sc.MaxBodyBytes = "127.0.0.1:0", 1<<20
	s := New(sc, cfg.Sampling, nil)
	s.SetEngine(fake.New("ok"))
	root := t.TempDir()
	for _, n := range []string{"a.gguf", "b.gguf"} {
		if err := os.WriteFile(filepath.Join(root, n), []byte("GGUF"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reg, err := adapters.NewRegistry(fakeLoader{}, []string{root}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.SetAdapters(reg)
	return s, root
}

// wantError checks an answer's status and that its body is an OpenAI
// error of the given type and code.
func wantError(t *testing.T, what string, w *httptest.ResponseRecorder, status int, typ, code string) apierror.Detail {
	t.Helper()
	var b apierror.Body
	if w.Code != status || json.Unmarshal(w.Body.Bytes(), &b) != nil || b.Error.Type != typ || b.Error.Message == "" {
		t.Fatalf("%s: %d %s, want %d %s", what, w.Code, w.Body, status, typ)
	}
	if code != "" && (b.Error.Code == nil || *b.Error.Code != code) {
		t.Fatalf("%s: code %v, want %s (%s)", what, b.Error.Code, code, w.Body)
	}
	return b.Error
}

func bearer(key string) []string {
	if key == "" {
		return nil
	}
	return []string{"Authorization", "Bearer " + key}
}

// Admin keys guard the operator routes; API keys keep the inference routes
// and get 403 on the operator ones; admin keys work as API keys.
func TestAdminKeys(t *testing.T) {
	s, _ := keyedServer(t, configs.ServerConfig{APIKeys: []string{"user1", "user2"}, AdminKeys: []string{"root"}})
	chat := `{"messages":[{"role":"user","content":"hi"}],"max_tokens":1}`
	for _, key := range []string{"user2", "root"} {
		if w := do(s, "POST", "/v1/chat/completions", chat, bearer(key)...); w.Code != 200 {
			t.Fatalf("chat with %s: %d %s", key, w.Code, w.Body)
		}
		if w := do(s, "POST", "/v1/completions", `{"prompt":"x","max_tokens":1}`, bearer(key)...); w.Code != 200 {
			t.Fatalf("completions with %s: %d %s", key, w.Code, w.Body)
		}
		if w := do(s, "GET", "/v1/models", "", bearer(key)...); w.Code != 200 {
			t.Fatalf("models with %s: %d %s", key, w.Code, w.Body)
		}
	}
	wantError(t, "chat without a key", do(s, "POST", "/v1/chat/completions", chat), 401, "authentication_error", "invalid_api_key")

	load := `{"name":"a","path":"a.gguf"}`
	operator := []struct{ method, path, body string }{
		{"POST", "/v1/adapters", load},
		{"GET", "/v1/adapters", ""},
		{"DELETE", "/v1/adapters/a", ""},
	}
	for _, r := range operator {
		d := wantError(t, r.method+" "+r.path+" with an API key", do(s, r.method, r.path, r.body, bearer("user1")...), 403, "permission_error", "admin_key_required")
		if !strings.Contains(d.Message, "admin key") {
			t.Errorf("403 does not say what is needed: %s", d.Message)
		}
		wantError(t, r.method+" "+r.path+" without a key", do(s, r.method, r.path, r.body), 401, "authentication_error", "")
		wantError(t, r.method+" "+r.path+" with a wrong key", do(s, r.method, r.path, r.body, bearer("root2")...), 401, "authentication_error", "")
	}
	if reg := s.adapterRegistry(); len(reg.List()) != 0 {
		t.Fatalf("an API key loaded an adapter: %+v", reg.List())
	}
	if w := do(s, "POST", "/v1/adapters", load, bearer("root")...); w.Code != 201 {
		t.Fatalf("load with the admin key: %d %s", w.Code, w.Body)
	}
	if w := do(s, "GET", "/v1/adapters", "", bearer("root")...); w.Code != 200 || !strings.Contains(w.Body.String(), `"name":"a"`) {
		t.Fatalf("list with the admin key: %d %s", w.Code, w.Body)
	}
	// The adapter is served to ordinary keys under its name.
	if w := do(s, "POST", "/v1/chat/completions", `{"model":"a","messages":[{"role":"user","content":"hi"}]}`, bearer("user1")...); w.Code != 200 {
		t.Fatalf("chat with the adapter: %d %s", w.Code, w.Body)
	}
	wantError(t, "unload with an API key", do(s, "DELETE", "/v1/adapters/a", "", bearer("user1")...), 403, "permission_error", "admin_key_required")
	if w := do(s, "DELETE", "/v1/adapters/a", "", bearer("root")...); w.Code != 200 {
		t.Fatalf("unload with the admin key: %d %s", w.Code, w.Body)
	}
}

// The combinations of configured keys.
func TestAdminKeyModes(t *testing.T) {
	load := `{"name":"b","path":"b.gguf"}`
	chat := `{"messages":[{"role":"user","content":"hi"}],"max_tokens":1}`

	// Admin keys alone: the inference routes stay open, the operator ones not.
	s, _ := keyedServer(t, configs.ServerConfig{AdminKeys: []string{"root"}})
	if w := do(s, "POST", "/v1/chat/completions", chat); w.Code != 200 {
		t.Fatalf("admin keys only, chat without a key: %d %s", w.Code, w.Body)
	}
	wantError(t, "admin keys only, load without a key", do(s, "POST", "/v1/adapters", load), 401, "authentication_error", "")
	if w := do(s, "POST", "/v1/adapters", load, bearer("root")...); w.Code != 201 {
		t.Fatalf("admin keys only, load with it: %d %s", w.Code, w.Body)
	}

	// API keys alone: nobody may use the operator routes.
	s, _ = keyedServer(t, configs.ServerConfig{APIKeys: []string{"user"}})
	d := wantError(t, "API keys only, load", do(s, "POST", "/v1/adapters", load, bearer("user")...), 403, "permission_error", "admin_key_required")
	if !strings.Contains(d.Message, "server.admin_keys") {
		t.Errorf("the refusal does not name the setting: %s", d.Message)
	}

	// No keys: a local server, every route open.
	s, _ = keyedServer(t, configs.ServerConfig{})
	if w := do(s, "POST", "/v1/adapters", load); w.Code != 201 {
		t.Fatalf("no keys, load: %d %s", w.Code, w.Body)
	}
}

// server.metrics_auth: /metrics for admin keys only; server.metrics_addr:
// /metrics on its own listener and not on the main one.
func TestMetricsAccess(t *testing.T) {
	s, _ := keyedServer(t, configs.ServerConfig{APIKeys: []string{"user"}, AdminKeys: []string{"root"}})
	if w := do(s, "GET", "/metrics", ""); w.Code != 200 {
		t.Fatalf("metrics open by default: %d", w.Code)
	}

	s, _ = keyedServer(t, configs.ServerConfig{APIKeys: []string{"user"}, AdminKeys: []string{"root"}, MetricsAuth: true})
	wantError(t, "metrics without a key", do(s, "GET", "/metrics", ""), 401, "authentication_error", "")
	wantError(t, "metrics with an API key", do(s, "GET", "/metrics", "", bearer("user")...), 403, "permission_error", "admin_key_required")
	if w := do(s, "GET", "/metrics", "", bearer("root")...); w.Code != 200 || !strings.Contains(w.Body.String(), "vllm:num_requests_running") {
		t.Fatalf("metrics with the admin key: %d %s", w.Code, w.Body)
	}

	s, _ = keyedServer(t, configs.ServerConfig{MetricsAddr: "127.0.0.1:0"})
	wantError(t, "metrics on the main listener with metrics_addr", do(s, "GET", "/metrics", ""), 404, "invalid_request_error", "not_found")
	w := httptest.NewRecorder()
	s.MetricsHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != 200 || !strings.Contains(w.Body.String(), "# TYPE vllm:num_requests_waiting gauge") {
		t.Fatalf("metrics listener: %d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	s.MetricsHandler().ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(`{}`)))
	if w.Code != 404 {
		t.Fatalf("the metrics listener serves the API: %d", w.Code)
	}
}

// Refusals to load an adapter name no server-side folder: not the adapter
// folder a relative path was resolved in, not where a symlink leads.
func TestAdapterRefusalsHidePaths(t *testing.T) {
	s, root := keyedServer(t, configs.ServerConfig{})
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.gguf")
	if err := os.WriteFile(secret, []byte("GGUF"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(root, "link.gguf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "broken"), 0o755); err != nil { // a folder that is no PEFT adapter
		t.Fatal(err)
	}
	rel, err := filepath.Rel(root, secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, want string
		status     int
	}{
		{rel, "outside the adapter folders", 403},
		{"link.gguf", "outside the adapter folders", 403},
		{"missing.gguf", "does not exist", 404},
		{"broken", "PEFT adapter", 400},
	} {
		body, _ := json.Marshal(map[string]string{"name": "x", "path": c.path})
		w := do(s, "POST", "/v1/adapters", string(body))
		if w.Code != c.status || !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("%s: %d %s, want %d %q", c.path, w.Code, w.Body, c.status, c.want)
		}
		for _, p := range []string{root, outside, filepath.Dir(root)} {
			if strings.Contains(w.Body.String(), p) {
				t.Errorf("%s: the refusal names the server-side path %s: %s", c.path, p, w.Body)
			}
		}
	}
}
