package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"go.uber.org/zap/zaptest"

	"github.com/qwen3-lora/qwen3-server/configs"
	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
	"github.com/qwen3-lora/qwen3-server/engine/scheduler"
	"github.com/qwen3-lora/qwen3-server/internal/testutil"
)

func sdkClient(t *testing.T, s *Server) (openai.Client, *httptest.Server) {
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return openai.NewClient(option.WithBaseURL(ts.URL+"/v1"), option.WithAPIKey("unused"), option.WithMaxRetries(0)), ts
}

func randomServer(t *testing.T, parallel, ctx int) (*Server, *scheduler.Engine) {
	return engineServer(t, "tiny-random.gguf", parallel, ctx)
}

// engineServer serves a generated test model on the real engine (CPU) with
// the default configuration.
func engineServer(t *testing.T, model string, parallel, ctx int) (*Server, *scheduler.Engine) {
	t.Helper()
	return engineServerWith(t, scheduler.Options{ModelPath: testutil.Model(t, model), GPULayers: 0, ContextSize: ctx, Parallel: parallel, Threads: 2})
}

// engineServerWith is engineServer with the engine's options spelled out.
func engineServerWith(t *testing.T, opts scheduler.Options) (*Server, *scheduler.Engine) {
	t.Helper()
	llamacpp.SetLogger(nil)
	// The CPU backend variants of lib/ollama, as the served binary uses.
	if opts.LibDir == "" {
		opts.LibDir = testutil.LibDir()
	}
	e, err := scheduler.New(opts, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	cfg, _ := configs.Load(nil, nil)
	s := New(configs.ServerConfig{Addr: "127.0.0.1:0", MaxBodyBytes: 1 << 20}, cfg.Sampling, zaptest.NewLogger(t))
	s.SetEngine(e)
	return s, e
}

// The official Go SDK against the real engine on the chain model.
func TestOpenAIGoSDKChat(t *testing.T) {
	client, _ := sdkClient(t, chainServer(t))
	ctx := context.Background()

	models, err := client.Models.List(ctx)
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != "tiny-chain" {
		t.Fatalf("models: %+v %v", models, err)
	}

	params := openai.ChatCompletionNewParams{Model: "tiny-chain", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")}}
	resp, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	msg := resp.Choices[0].Message
	var reasoning string
	if f, ok := msg.JSON.ExtraFields["reasoning_content"]; !ok || json.Unmarshal([]byte(f.Raw()), &reasoning) != nil {
		t.Fatalf("no reasoning_content in %s", msg.RawJSON())
	}
	if msg.Content != "Hello!" || reasoning != "Let me think." || resp.Choices[0].FinishReason != "stop" {
		t.Fatalf("content %q reasoning %q finish %q", msg.Content, reasoning, resp.Choices[0].FinishReason)
	}
	if resp.Usage.CompletionTokensDetails.ReasoningTokens != 4 || resp.Usage.CompletionTokens != 10 {
		t.Fatalf("usage %+v", resp.Usage)
	}

	// Streaming, thinking switched off through chat_template_kwargs.
	stream := client.Chat.Completions.NewStreaming(ctx, params, option.WithJSONSet("chat_template_kwargs", map[string]any{"enable_thinking": false}))
	var content strings.Builder
	var finish string
	for stream.Next() {
		ch := stream.Current()
		for _, c := range ch.Choices {
			content.WriteString(c.Delta.Content)
			if c.FinishReason != "" {
				finish = c.FinishReason
			}
			if strings.Contains(c.Delta.RawJSON(), "reasoning_content") {
				t.Fatalf("reasoning with thinking off: %s", c.Delta.RawJSON())
			}
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if content.String() != "Hello!" || finish != "stop" {
		t.Fatalf("stream: %q %q", content.String(), finish)
	}

	// A clear error surfaces through the SDK.
	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "nope", Messages: params.Messages})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Fatalf("unknown model: %v", err)
	}

	// An assistant prefill inside the reasoning (vLLM's template controls as
	// extra fields): only the continuation comes back.
	prefill := openai.ChatCompletionNewParams{Model: "tiny-chain", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi"), openai.AssistantMessage("<think>\nLet me")}}
	resp, err = client.Chat.Completions.New(ctx, prefill, option.WithJSONSet("add_generation_prompt", false), option.WithJSONSet("continue_final_message", true))
	if err != nil {
		t.Fatal(err)
	}
	if f := resp.Choices[0].Message.JSON.ExtraFields["reasoning_content"]; resp.Choices[0].Message.Content != "Hello!" || f.Raw() != `" think."` {
		t.Fatalf("continued: %s", resp.RawJSON())
	}
	_, err = client.Chat.Completions.New(ctx, prefill, option.WithJSONSet("continue_final_message", true))
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "continue_final_message" {
		t.Fatalf("continue_final_message with add_generation_prompt: %v", err)
	}
}

// Completions with a prompt array through the SDK: one choice per prompt,
// in order, each equal to the prompt run alone (greedy).
func TestOpenAIGoSDKCompletionsBatch(t *testing.T) {
	s, _ := randomServer(t, 4, 256)
	client, _ := sdkClient(t, s)
	ctx := context.Background()
	prompts := []string{"The capital of France is", "1, 2, 3,", "def main():", "Once upon a time"}
	alone := make([]string, len(prompts))
	for i, p := range prompts {
		r, err := client.Completions.New(ctx, openai.CompletionNewParams{
			Model: "tiny-random", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(p)},
			MaxTokens: openai.Int(8), Temperature: openai.Float(0),
		})
		if err != nil {
			t.Fatal(err)
		}
		alone[i] = r.Choices[0].Text
	}
	r, err := client.Completions.New(ctx, openai.CompletionNewParams{
		Model: "tiny-random", Prompt: openai.CompletionNewParamsPromptUnion{OfArrayOfStrings: prompts},
		MaxTokens: openai.Int(8), Temperature: openai.Float(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Choices) != len(prompts) {
		t.Fatalf("%d choices", len(r.Choices))
	}
	for i, c := range r.Choices {
		if int(c.Index) != i || c.Text != alone[i] {
			t.Errorf("choice %d (index %d): %q, alone %q", i, c.Index, c.Text, alone[i])
		}
	}
	if r.Usage.CompletionTokens < 4 {
		t.Fatalf("usage %+v", r.Usage)
	}
}

// A client that goes away mid-stream cancels its generation: the slot is
// free again at once.
func TestDisconnectFreesSlot(t *testing.T) {
	s, e := randomServer(t, 1, 2048)
	client, _ := sdkClient(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	stream := client.Completions.NewStreaming(ctx, openai.CompletionNewParams{
		Model: "tiny-random", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Tell me everything")},
		MaxTokens: openai.Int(1500), Temperature: openai.Float(0),
	})
	for i := 0; i < 3 && stream.Next(); i++ {
	}
	if e.Stats().BusySlots != 1 {
		t.Fatalf("expected the request running, stats %+v", e.Stats())
	}
	cancel()
	stream.Close()
	deadline := time.Now().Add(5 * time.Second)
	for e.Stats().BusySlots != 0 {
		if time.Now().After(deadline) {
			t.Fatal("slot still busy 5 s after the client left")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Structured output through the real llama.cpp grammar, and prompts longer
// than the context.
func TestJSONSchemaAndLongPrompt(t *testing.T) {
	s, _ := randomServer(t, 1, 128)
	w := post(t, s, `{"messages":[{"role":"user","content":"color?"}],"max_tokens":60,"response_format":{"type":"json_schema","json_schema":{"name":"c","schema":{"type":"object","properties":{"color":{"enum":["red","green"]}},"required":["color"],"additionalProperties":false}}}}`)
	var res chatResult
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var v struct {
		Color string `json:"color"`
	}
	if err := json.Unmarshal([]byte(deref(res.Choices[0].Message.Content)), &v); err != nil || (v.Color != "red" && v.Color != "green") {
		t.Fatalf("not schema JSON: %q (%v)", deref(res.Choices[0].Message.Content), err)
	}
	long := strings.Repeat("word ", 200)
	w = post(t, s, `{"messages":[{"role":"user","content":"`+long+`"}]}`)
	if w.Code != 400 || !strings.Contains(w.Body.String(), "context holds 128") || !strings.Contains(w.Body.String(), `"param":"messages"`) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	w = do(s, "POST", "/v1/completions", `{"prompt":"`+long+`"}`)
	if w.Code != 400 || !strings.Contains(w.Body.String(), `"param":"prompt"`) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}

// tool_choice "required" and a named function, through the official Go
// SDK, against the random model: the grammar leaves it nothing to write
// but calls of the given functions with arguments matching their schemas.
func TestForcedToolChoiceGoSDK(t *testing.T) {
	s, _ := randomServer(t, 2, 512)
	client, _ := sdkClient(t, s)
	weather := openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "get_weather", Parameters: openai.FunctionParameters{
		"type": "object", "properties": map[string]any{"city": map[string]any{"enum": []string{"Paris", "Rome"}}}, "required": []string{"city"}, "additionalProperties": false,
	}})
	clock := openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "get_time", Parameters: openai.FunctionParameters{
		"type": "object", "properties": map[string]any{"utc": map[string]any{"type": "boolean"}}, "required": []string{"utc"}, "additionalProperties": false,
	}})
	for _, tc := range []struct {
		name   string
		choice openai.ChatCompletionToolChoiceOptionUnionParam
		want   []string
	}{
		{"required", openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")}, []string{"get_weather", "get_time"}},
		{"named", openai.ToolChoiceOptionFunctionToolChoice(openai.ChatCompletionNamedToolChoiceFunctionParam{Name: "get_time"}), []string{"get_time"}},
	} {
		for seed := int64(1); seed <= 2; seed++ {
			resp, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
				Model:    "tiny-random",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the weather in Paris?")},
				Tools:    []openai.ChatCompletionToolUnionParam{weather, clock}, ToolChoice: tc.choice,
				MaxTokens: openai.Int(200), Seed: openai.Int(seed), Temperature: openai.Float(1),
			})
			if err != nil {
				t.Fatalf("%s seed %d: %v", tc.name, seed, err)
			}
			ch := resp.Choices[0]
			if ch.FinishReason != "tool_calls" || len(ch.Message.ToolCalls) == 0 || ch.Message.Content != "" {
				t.Fatalf("%s seed %d: %+v", tc.name, seed, ch)
			}
			for _, call := range ch.Message.ToolCalls {
				var args map[string]any
				if !slices.Contains(tc.want, call.Function.Name) || json.Unmarshal([]byte(call.Function.Arguments), &args) != nil {
					t.Fatalf("%s seed %d: call %s(%s)", tc.name, seed, call.Function.Name, call.Function.Arguments)
				}
				switch call.Function.Name {
				case "get_weather":
					if c := args["city"]; c != "Paris" && c != "Rome" || len(args) != 1 {
						t.Fatalf("arguments %s", call.Function.Arguments)
					}
				case "get_time":
					if _, ok := args["utc"].(bool); !ok || len(args) != 1 {
						t.Fatalf("arguments %s", call.Function.Arguments)
					}
				}
			}
			if tc.name == "named" && len(ch.Message.ToolCalls) != 1 {
				t.Fatalf("named: %d calls", len(ch.Message.ToolCalls))
			}
		}
	}
	// Mistakes are refused with the parameter named.
	for body, param := range map[string]string{
		`{"messages":[{"role":"user","content":"x"}],"tool_choice":"required"}`:                                                                                           "tool_choice",
		`{"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"function","function":{"name":"nope"}},"tools":[{"type":"function","function":{"name":"a"}}]}`: "tool_choice",
		`{"messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes","tools":[{"type":"function","function":{"name":"a"}}]}`:                                    "tool_choice",
		`{"messages":[{"role":"user","content":"x"}],"tool_choice":"required","enable_thinking":true,"tools":[{"type":"function","function":{"name":"a"}}]}`:              "tool_choice",
	} {
		if w := post(t, s, body); w.Code != 400 || !strings.Contains(w.Body.String(), `"param":"`+param+`"`) {
			t.Errorf("%s: %d %s", body, w.Code, w.Body)
		}
	}
}

// A KV cache shared by all sequences and smaller than parallel × ctx (256
// cells for two sequences of up to 256): when two long requests fill it,
// the newer one fails alone with 503 (overloaded, Retry-After), the other
// finishes as it would alone, and the server goes on serving.
func TestFullKVCacheFailsOneRequest(t *testing.T) {
	s, e := engineServerWith(t, scheduler.Options{ModelPath: testutil.Model(t, "tiny-random.gguf"), GPULayers: 0, ContextSize: 256, Parallel: 2, Threads: 2, KVCacheSize: 256})
	client, _ := sdkClient(t, s)
	ctx := context.Background()
	long := func(prompt string) openai.CompletionNewParams {
		return openai.CompletionNewParams{Model: "tiny-random", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)},
			MaxTokens: openai.Int(200), Temperature: openai.Float(0)}
	}
	eos := option.WithJSONSet("ignore_eos", true)
	alone, err := client.Completions.New(ctx, long("Once upon a time"), eos)
	if err != nil || alone.Choices[0].FinishReason != "length" || alone.Usage.CompletionTokens != 200 {
		t.Fatalf("alone: %v %v", alone, err)
	}

	started := make(chan struct{})
	type streamed struct {
		text, finish string
		err          error
	}
	done := make(chan streamed, 1)
	go func() {
		var r streamed
		stream := client.Completions.NewStreaming(ctx, long("Once upon a time"), eos)
		for stream.Next() {
			if r.text == "" && r.finish == "" {
				close(started)
			}
			for _, c := range stream.Current().Choices {
				r.text += c.Text
				if c.FinishReason != "" {
					r.finish = string(c.FinishReason)
				}
			}
		}
		r.err = stream.Err()
		done <- r
	}()
	select {
	case <-started:
	case r := <-done:
		t.Fatalf("the first request ended before the second started: %+v", r)
	}
	_, err = client.Completions.New(ctx, long("A different story begins here"), eos)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 503 || apiErr.Code != "overloaded" || apiErr.Response.Header.Get("Retry-After") == "" {
		t.Fatalf("the newer request: %v", err)
	}
	r := <-done
	if r.err != nil || r.finish != "length" || r.text != alone.Choices[0].Text {
		t.Fatalf("the older request: finish %q err %v, text equal to alone: %v", r.finish, r.err, r.text == alone.Choices[0].Text)
	}
	if again, err := client.Completions.New(ctx, long("Once upon a time"), eos); err != nil || again.Choices[0].Text != alone.Choices[0].Text {
		t.Fatalf("afterwards: %v", err)
	}
	if st := e.Stats(); st.BusySlots != 0 {
		t.Fatalf("stats %+v", st)
	}
}
