package conversation

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/qwen3-lora/qwen3-server/adapters"
	"github.com/qwen3-lora/qwen3-server/conversation/qwen3"
	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/fake"
	"github.com/qwen3-lora/qwen3-server/sampling"
)

// qwenTags tokenizes like Qwen3's vocabulary for the reasoning tags.
type qwenTags struct{ calls int }

func (q *qwenTags) Tokenize(text string, special bool) ([]int32, error) {
	q.calls++
	if text != qwen3.ThinkOpen+qwen3.ReasoningEnd || !special {
		return nil, errors.New("unexpected text " + text)
	}
	return []int32{151667, 198, 151668, 271}, nil
}

func planner() *Planner {
	return NewPlanner(Defaults{EnableThinking: true, ThinkingBudget: -1, Thinking: sampling.Thinking, NonThinking: sampling.NonThinking})
}

func user(text string) []qwen3.Message { return []qwen3.Message{{Role: "user", Content: text}} }

func ptr[T any](v T) *T { return &v }

func TestChatPlanModesAndPresets(t *testing.T) {
	p, tok := planner(), &qwenTags{}
	on, err := p.Chat(tok, &Request{Messages: user("hi")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !on.Thinking || !strings.HasSuffix(on.Request.Prompt, "<|im_start|>assistant\n") || on.N != 1 {
		t.Fatalf("thinking plan: %+v", on)
	}
	if got := on.Sampling.String(); !strings.Contains(got, "temperature=0.6 top_p=0.95 top_k=20") {
		t.Errorf("thinking preset: %s", got)
	}
	// The engine gets the tags to count reasoning tokens even with no budget.
	if r := on.Request; r.ReasoningBudget != -1 || r.ReasoningStartToken != 151667 || r.ReasoningEndToken != 151668 || len(r.ReasoningEnd) != 3 {
		t.Errorf("reasoning tags: %+v", r)
	}
	off, err := p.Chat(tok, &Request{Messages: user("hi"), Thinking: qwen3.ThinkingSwitch{EnableThinking: ptr(false)},
		Sampling: sampling.Params{TopK: ptr(5)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if off.Thinking || !strings.HasSuffix(off.Request.Prompt, "<think>\n\n</think>\n\n") || off.Request.ReasoningStartToken != 0 {
		t.Fatalf("non-thinking plan: %q %+v", off.Request.Prompt, off.Request)
	}
	if got := off.Sampling.String(); !strings.Contains(got, "temperature=0.7 top_p=0.8 top_k=5") {
		t.Errorf("request over the non-thinking preset: %s", got)
	}
	if tok.calls != 1 {
		t.Errorf("the tags were tokenized %d times, want once", tok.calls)
	}
	// Resolved parameters are copies: changing one changes no preset.
	*on.Sampling.Temperature = 2
	if *sampling.Thinking.Temperature != 0.6 || *p.ModeSampling(nil, true).Temperature != 0.6 {
		t.Fatal("a plan shares the preset's values")
	}
}

func TestChatPlanAdapterManifest(t *testing.T) {
	m := &adapters.Manifest{EnableThinking: ptr(false), SystemPrompt: "You are a doctor.", Sampling: sampling.Params{Temperature: ptr[float32](0.3)}}
	plan, err := planner().Chat(&qwenTags{}, &Request{Messages: user("hi")}, m)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Thinking || !strings.HasPrefix(plan.Request.Prompt, "<|im_start|>system\nYou are a doctor.<|im_end|>\n") {
		t.Fatalf("manifest defaults not applied: %q", plan.Request.Prompt)
	}
	if got := plan.Sampling.String(); !strings.Contains(got, "temperature=0.3 top_p=0.8") {
		t.Errorf("manifest over the preset: %s", got)
	}
	// The request's own system message and thinking switch win.
	plan, err = planner().Chat(&qwenTags{}, &Request{Messages: []qwen3.Message{{Role: "developer", Content: "Be brief."}, {Role: "user", Content: "hi"}},
		Thinking: qwen3.ThinkingSwitch{ReasoningEffort: ptr("high")}}, m)
	if err != nil {
		t.Fatal(err)
	}
	if !plan.Thinking || strings.Contains(plan.Request.Prompt, "doctor") || !strings.HasPrefix(plan.Request.Prompt, "<|im_start|>system\nBe brief.") {
		t.Fatalf("request did not win: %v %q", plan.Thinking, plan.Request.Prompt)
	}
}

func TestChatPlanConstrainedOutput(t *testing.T) {
	tools := []json.RawMessage{json.RawMessage(`{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}`)}
	p := planner()
	forced, err := p.Chat(&qwenTags{}, &Request{Messages: user("weather?"), Tools: tools, ToolChoice: json.RawMessage(`"required"`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if forced.Thinking || !forced.Tools || !strings.Contains(forced.Request.Grammar, "qwen3-tool-call") || !strings.Contains(string(forced.Request.JSONSchema), `"const":"get_weather"`) {
		t.Fatalf("forced tool calls: %+v", forced.Request)
	}
	none, err := p.Chat(&qwenTags{}, &Request{Messages: user("weather?"), Tools: tools, ToolChoice: json.RawMessage(`"none"`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(none.Request.Prompt, "get_weather") || none.Request.Grammar != "" {
		t.Errorf(`tool_choice "none" still tells the model about the tools: %q`, none.Request.Prompt)
	}
	js, err := p.Chat(&qwenTags{}, &Request{Messages: user("json"), ResponseFormat: &ResponseFormat{Type: "json_object"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if js.Thinking || string(js.Request.JSONSchema) != `{"type":"object"}` {
		t.Fatalf("json_object: %+v", js)
	}
}

func TestChatPlanErrorsNameTheParameter(t *testing.T) {
	tools := []json.RawMessage{json.RawMessage(`{"type":"function","function":{"name":"f"}}`)}
	cases := []struct {
		name  string
		req   Request
		param string
	}{
		{"no messages", Request{}, "messages"},
		{"unknown role", Request{Messages: []qwen3.Message{{Role: "wizard"}}}, "messages[0].role"},
		{"n", Request{Messages: user("x"), N: ptr(MaxChoices + 1)}, "n"},
		{"max_tokens", Request{Messages: user("x"), MaxTokens: ptr(0)}, "max_tokens"},
		{"temperature", Request{Messages: user("x"), Sampling: sampling.Params{Temperature: ptr[float32](3)}}, "temperature"},
		{"empty stop", Request{Messages: user("x"), Stop: []string{""}}, "stop"},
		{"top_logprobs without logprobs", Request{Messages: user("x"), TopLogprobs: ptr(2)}, "top_logprobs"},
		{"top_logprobs too many", Request{Messages: user("x"), Logprobs: true, TopLogprobs: ptr(engine.MaxTopLogprobs + 1)}, "top_logprobs"},
		{"negative thinking budget", Request{Messages: user("x"), ThinkingBudget: ptr(-2)}, "thinking_budget"},
		{"bad effort", Request{Messages: user("x"), Thinking: qwen3.ThinkingSwitch{ReasoningEffort: ptr("max")}}, "enable_thinking"},
		{"schema and thinking", Request{Messages: user("x"), ResponseFormat: &ResponseFormat{Type: "json_object"}, Thinking: qwen3.ThinkingSwitch{EnableThinking: ptr(true)}}, "response_format"},
		{"forced tools and thinking", Request{Messages: user("x"), Tools: tools, ToolChoice: json.RawMessage(`"required"`), Thinking: qwen3.ThinkingSwitch{EnableThinking: ptr(true)}}, "tool_choice"},
		{"forced tools and schema", Request{Messages: user("x"), Tools: tools, ToolChoice: json.RawMessage(`"required"`), ResponseFormat: &ResponseFormat{Type: "json_object"}}, "response_format"},
		{"unknown format", Request{Messages: user("x"), ResponseFormat: &ResponseFormat{Type: "yaml"}}, "response_format"},
		{"schema missing", Request{Messages: user("x"), ResponseFormat: &ResponseFormat{Type: "json_schema"}}, "response_format"},
		{"named tool missing", Request{Messages: user("x"), Tools: tools, ToolChoice: json.RawMessage(`{"type":"function","function":{"name":"g"}}`)}, "tool_choice"},
		{"tool_choice without tools", Request{Messages: user("x"), ToolChoice: json.RawMessage(`"required"`)}, "tool_choice"},
		{"both template controls", Request{Messages: []qwen3.Message{{Role: "user"}, {Role: "assistant", Content: "a"}}, ContinueFinalMessage: true}, "continue_final_message"},
		{"continue a user message", Request{Messages: user("x"), ContinueFinalMessage: true, AddGenerationPrompt: ptr(false)}, "continue_final_message"},
	}
	for _, c := range cases {
		_, err := planner().Chat(&qwenTags{}, &c.req, nil)
		var ee *engine.Error
		if !errors.As(err, &ee) || ee.Kind != engine.KindInvalid || ee.Param != c.param || ee.Message == "" {
			t.Errorf("%s: %v (%+v), want an invalid-request error on %s", c.name, err, ee, c.param)
		}
	}
}

func TestThinkingBudgetNeedsTheTags(t *testing.T) {
	// An engine without Qwen3's vocabulary (the fake) runs uncounted, but a
	// budget it cannot enforce is an error.
	f := fake.New("x")
	if _, err := planner().Chat(f, &Request{Messages: user("x")}, nil); err != nil {
		t.Fatalf("no budget: %v", err)
	}
	if _, err := planner().Chat(f, &Request{Messages: user("x"), ThinkingBudget: ptr(8)}, nil); err == nil {
		t.Fatal("a budget without reasoning tags was accepted")
	}
	plan, err := planner().Chat(&qwenTags{}, &Request{Messages: user("x"), ThinkingBudget: ptr(8)}, nil)
	if err != nil || plan.Request.ReasoningBudget != 8 {
		t.Fatalf("budget: %v %+v", err, plan)
	}
}

func TestContinueFinalMessage(t *testing.T) {
	msgs := []qwen3.Message{{Role: "user", Content: "hi"}, {Role: "assistant", Content: "<think>\nI think"}}
	plan, err := planner().Chat(&qwenTags{}, &Request{Messages: msgs, ContinueFinalMessage: true, AddGenerationPrompt: ptr(false)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !plan.Continued || !strings.HasSuffix(plan.Request.Prompt, "<think>\nI think") || plan.Request.ReasoningStartToken != -1 {
		t.Fatalf("continuation in the reasoning: %+v", plan.Request)
	}
	out := plan.NewOutput()
	out.Feed(engine.Chunk{Text: " more</think>\n\nAnswer"})
	out.Finish()
	if r, ok := out.Reasoning(); !ok || r != " more" || out.Answer() != "Answer" {
		t.Fatalf("continued output: %q %v %q", r, ok, out.Answer())
	}
}

func TestOutputSplitsReasoningAnswerAndCalls(t *testing.T) {
	tools := []json.RawMessage{json.RawMessage(`{"type":"function","function":{"name":"f"}}`)}
	plan, err := planner().Chat(&qwenTags{}, &Request{Messages: user("x"), Tools: tools}, nil)
	if err != nil {
		t.Fatal(err)
	}
	text := "<think>\nplan it\n</think>\n\nCalling.<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>"
	// Every split of the output into two chunks gives the same result.
	for cut := 0; cut <= len(text); cut++ {
		o := plan.NewOutput()
		var got Delta
		for _, piece := range []string{text[:cut], text[cut:]} {
			d := o.Feed(engine.Chunk{Text: piece, Logprobs: []engine.Logprob{{}}})
			got.Reasoning += d.Reasoning
			got.Answer += d.Answer
			got.Calls = append(got.Calls, d.Calls...)
		}
		d := o.Finish()
		got.Reasoning, got.Answer, got.Calls = got.Reasoning+d.Reasoning, got.Answer+d.Answer, append(got.Calls, d.Calls...)
		r, ok := o.Reasoning()
		if !ok || r != "plan it" || got.Reasoning != r || got.Answer != "Calling." || o.Answer() != "Calling." || len(got.Calls) != 1 || got.Calls[0].Name != "f" {
			t.Fatalf("cut %d: %+v reasoning %q", cut, got, r)
		}
		if o.FinishReason(&engine.Result{FinishReason: engine.FinishStop}) != FinishToolCalls || o.FinishReason(&engine.Result{FinishReason: engine.FinishLength}) != engine.FinishLength {
			t.Fatal("finish reason")
		}
		if n := len(o.UnsentLogprobs()); n != 2 || len(o.UnsentLogprobs()) != 0 || len(o.Logprobs()) != 2 {
			t.Fatalf("logprobs handed out %d", n)
		}
	}
}

func TestCompletionPlan(t *testing.T) {
	reqs, params, err := planner().Completion(&CompletionRequest{Prompts: []string{"a", "b"}, PromptTokens: [][]int32{{1, 2}}, Logprobs: ptr(2), Echo: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 3 || reqs[0].Prompt != "a" || reqs[2].PromptTokens[1] != 2 || reqs[0].MaxTokens != DefaultCompletionTokens || !reqs[1].PromptLogprobs || reqs[1].TopLogprobs != 2 {
		t.Fatalf("%+v", reqs)
	}
	if !strings.Contains(params.String(), "temperature=0.6") {
		t.Errorf("raw completions use the thinking preset: %s", params)
	}
	score, _, err := planner().Completion(&CompletionRequest{Prompts: []string{"a"}, MaxTokens: ptr(0), Echo: true})
	if err != nil || !score[0].PromptOnly {
		t.Fatalf("max_tokens 0 with echo scores the prompt: %v %+v", err, score)
	}
	for name, c := range map[string]CompletionRequest{
		"prompt":     {},
		"max_tokens": {Prompts: []string{"a"}, MaxTokens: ptr(0)},
		"n":          {Prompts: []string{"a"}, N: ptr(2)},
		"logprobs":   {Prompts: []string{"a"}, Logprobs: ptr(-1)},
		"stop":       {Prompts: []string{"a"}, Stop: []string{""}},
	} {
		_, _, err := planner().Completion(&c)
		var ee *engine.Error
		if !errors.As(err, &ee) || ee.Param != name {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, err := planner().Completion(&CompletionRequest{Prompts: make([]string, MaxPrompts+1)}); err == nil {
		t.Error("too many prompts accepted")
	}
}
