package qwen3

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

type wireCall struct {
	Type     string          `json:"type"`
	Name     string          `json:"name"`
	Args     json.RawMessage `json:"arguments"`
	Function *struct {
		Name string          `json:"name"`
		Args json.RawMessage `json:"arguments"`
	} `json:"function"`
}

type wireMessage struct {
	Role             string     `json:"role"`
	Content          *string    `json:"content"`
	ReasoningContent *string    `json:"reasoning_content"`
	ToolCalls        []wireCall `json:"tool_calls"`
}

type goldenCase struct {
	Name                string            `json:"name"`
	Messages            []wireMessage     `json:"messages"`
	Tools               []json.RawMessage `json:"tools"`
	EnableThinking      *bool             `json:"enable_thinking"`
	AddGenerationPrompt bool              `json:"add_generation_prompt"`
	Expected            string            `json:"expected"`
}

func (g goldenCase) conversation() Conversation {
	c := Conversation{Tools: g.Tools, AddGenerationPrompt: g.AddGenerationPrompt, EnableThinking: g.EnableThinking}
	for _, m := range g.Messages {
		msg := Message{Role: m.Role, ReasoningContent: m.ReasoningContent}
		if m.Content != nil {
			msg.Content = *m.Content
		}
		for _, tc := range m.ToolCalls {
			call := ToolCall{Name: tc.Name, Arguments: tc.Args}
			if tc.Function != nil {
				call = ToolCall{Name: tc.Function.Name, Arguments: tc.Function.Args}
			}
			msg.ToolCalls = append(msg.ToolCalls, call)
		}
		c.Messages = append(c.Messages, msg)
	}
	return c
}

func loadGoldens(t *testing.T, path string) []goldenCase {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []goldenCase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var g goldenCase
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatal(err)
		}
		out = append(out, g)
	}
	return out
}

// The reference cases: what transformers renders with the official template.
func TestAcceptanceGoldens(t *testing.T) {
	cases := loadGoldens(t, "../../testdata/qwen3_chat_template.jsonl")
	if len(cases) < 8 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, g := range cases {
		t.Run(g.Name, func(t *testing.T) {
			got, err := Render(g.conversation())
			if err != nil {
				t.Fatal(err)
			}
			if got != g.Expected {
				t.Fatalf("got\n%q\nwant\n%q", got, g.Expected)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// Cases beyond the reference file, written from the template's statements.
func TestMoreTemplateCases(t *testing.T) {
	off := ptr(false)
	cases := []renderCase{
		{
			name: "reasoning kept only after the last user query",
			c: Conversation{Messages: []Message{
				{Role: "user", Content: "Q1"},
				{Role: "assistant", Content: "A1", ReasoningContent: ptr("R1")},
				{Role: "user", Content: "Q2"},
				{Role: "assistant", Content: "", ToolCalls: []ToolCall{{Name: "f", Arguments: json.RawMessage(`"{\"x\": 1}"`)}}, ReasoningContent: ptr("\nR2\n")},
				{Role: "tool", Content: "r1"},
				{Role: "tool", Content: "r2"},
				{Role: "assistant", Content: "\n\nfinal", ReasoningContent: ptr("R3")},
			}},
			want: "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n" +
				"<|im_start|>assistant\n<think>\nR2\n</think>\n\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call><|im_end|>\n" +
				"<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n</tool_response><|im_end|>\n" +
				"<|im_start|>assistant\n<think>\nR3\n</think>\n\nfinal<|im_end|>\n",
		},
		{
			name: "a user message wrapping a tool response is not the last query",
			c: Conversation{Messages: []Message{
				{Role: "user", Content: "Q"},
				{Role: "assistant", Content: "<think>\nplan\n</think>\n\ncalling"},
				{Role: "user", Content: "<tool_response>\nok\n</tool_response>"},
			}, AddGenerationPrompt: true, EnableThinking: off},
			want: "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\nplan\n</think>\n\ncalling<|im_end|>\n" +
				"<|im_start|>user\n<tool_response>\nok\n</tool_response><|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
		},
		{
			name: "system with tools, two calls after content, key order and escapes kept, last turn gets a think block",
			c: Conversation{
				Messages: []Message{
					{Role: "system", Content: "Be brief."},
					{Role: "user", Content: "go"},
					{Role: "assistant", Content: "Sure.", ToolCalls: []ToolCall{
						{Name: "b", Arguments: json.RawMessage(`{"z": 1, "a": "é\"\n<"}`)},
						{Name: "a", Arguments: json.RawMessage(`{}`)},
					}},
				},
				Tools: []json.RawMessage{json.RawMessage(`{"type":"function","function":{"name":"b","parameters":{"z":{"type":"integer"},"a":{}}}}`)},
			},
			want: "<|im_start|>system\nBe brief.\n\n" + toolsPreamble +
				"\n{\"type\": \"function\", \"function\": {\"name\": \"b\", \"parameters\": {\"z\": {\"type\": \"integer\"}, \"a\": {}}}}" + toolsPostamble +
				"<|im_start|>user\ngo<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nSure.\n<tool_call>\n{\"name\": \"b\", \"arguments\": {\"z\": 1, \"a\": \"é\\\"\\n<\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call><|im_end|>\n",
		},
		{
			name: "later system message rendered in place; /no_think passed through",
			c: Conversation{Messages: []Message{
				{Role: "user", Content: "hi /no_think"},
				{Role: "system", Content: "late"},
			}, AddGenerationPrompt: true},
			want: "<|im_start|>user\nhi /no_think<|im_end|>\n<|im_start|>system\nlate<|im_end|>\n<|im_start|>assistant\n",
		},
	}
	checkRenders(t, cases)
}

func TestPyJSON(t *testing.T) {
	for in, want := range map[string]string{
		`{"b":1,"a":[true,null,2.50,"x"]}`: `{"b": 1, "a": [true, null, 2.50, "x"]}`,
		`"tab\there \u0001 ünï / \u2028"`:  "\"tab\\there \\u0001 ünï / \u2028\"",
		`[]`:                               `[]`,
	} {
		got, err := PyJSON([]byte(in))
		if err != nil || got != want {
			t.Errorf("%s: got %s (%v), want %s", in, got, err, want)
		}
	}
	if _, err := PyJSON([]byte(`{"a":`)); err == nil {
		t.Error("truncated JSON accepted")
	}
}

func TestOfficialTemplateDetection(t *testing.T) {
	if !OfficialTemplate(officialTemplate + "\n") {
		t.Fatal("official template not recognised")
	}
	if OfficialTemplate(strings.Replace(officialTemplate, "<|im_start|>", "<s>", 1)) {
		t.Fatal("a changed template was taken for the official one")
	}
}

// continue_final_message against transformers' rendering: its golden case
// rendered without a generation prompt, the final message then left open.
func TestContinueFinalMessageGolden(t *testing.T) {
	n := 0
	for _, g := range loadGoldens(t, "../../testdata/qwen3_chat_template.jsonl") {
		c := g.conversation()
		if g.AddGenerationPrompt || c.Messages[len(c.Messages)-1].Role != "assistant" {
			continue
		}
		n++
		c.ContinueFinalMessage = true
		got, err := Render(c)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimSuffix(g.Expected, "<|im_end|>\n"); got != want || want == g.Expected {
			t.Fatalf("%s: got\n%q\nwant\n%q", g.Name, got, want)
		}
	}
	if n == 0 {
		t.Fatal("no golden case ends with an assistant message")
	}
}

func TestContinueFinalMessage(t *testing.T) {
	const head = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
	user := Message{Role: "user", Content: "Hi"}
	cont := func(final Message, more ...Message) Conversation {
		return Conversation{Messages: append(append([]Message{user}, more...), final), ContinueFinalMessage: true}
	}
	offC := cont(Message{Role: "assistant", Content: "Hello"})
	offC.EnableThinking = ptr(false)
	noUser := Conversation{Messages: []Message{{Role: "system", Content: "S"}, {Role: "assistant", Content: "Once"}}, ContinueFinalMessage: true}
	cases := []renderCase{
		// The last assistant turn after the last query always gets a think
		// block from the template; thinking off changes only the generation
		// prompt, which a continuation does not have.
		{"answer prefill", cont(Message{Role: "assistant", Content: "Hello"}), head + "<think>\n\n</think>\n\nHello"},
		{"answer prefill, thinking off", offC, head + "<think>\n\n</think>\n\nHello"},
		// No </think> in the content: the template puts an empty block
		// first and the open <think> after it.
		{"reasoning prefill", cont(Message{Role: "assistant", Content: "<think>\nI should"}), head + "<think>\n\n</think>\n\n<think>\nI should"},
		{"reasoning and answer in content", cont(Message{Role: "assistant", Content: "<think>\nplan\n</think>\n\nThe answer is"}), head + "<think>\nplan\n</think>\n\nThe answer is"},
		{"reasoning_content field", cont(Message{Role: "assistant", Content: "The answer is", ReasoningContent: ptr("R")}), head + "<think>\nR\n</think>\n\nThe answer is"},
		{"trailing whitespace kept", cont(Message{Role: "assistant", Content: "Hello\n\n"}), head + "<think>\n\n</think>\n\nHello\n\n"},
		{"leading newlines trimmed by the template", cont(Message{Role: "assistant", Content: "\n\nHello "}), head + "<think>\n\n</think>\n\nHello"},
		{"the last occurrence", cont(Message{Role: "assistant", Content: "Hi"}), head + "<think>\n\n</think>\n\nHi"},
		{"tool calls after the content are cut", cont(Message{Role: "assistant", Content: "Calling", ToolCalls: []ToolCall{{Name: "f", Arguments: json.RawMessage(`{}`)}}}), head + "<think>\n\n</think>\n\nCalling"},
		{"no user query: no think block", noUser, "<|im_start|>system\nS<|im_end|>\n<|im_start|>assistant\nOnce"},
		// transformers: rindex("") is the end, so the chat stays whole.
		{"empty content", cont(Message{Role: "assistant", Content: ""}), head + "<think>\n\n</think>\n\n<|im_end|>\n"},
	}
	checkRenders(t, cases)
	for name, c := range map[string]Conversation{
		"with a generation prompt":   {Messages: []Message{user, {Role: "assistant", Content: "x"}}, ContinueFinalMessage: true, AddGenerationPrompt: true},
		"last message from the user": {Messages: []Message{user}, ContinueFinalMessage: true},
		// The template rewrites "<think>R</think>A" as "<think>\nR\n</think>\n\nA".
		"content rewritten by the template": cont(Message{Role: "assistant", Content: "<think>R</think>A"}),
	} {
		if _, err := Render(c); err == nil || !strings.Contains(err.Error(), "continue_final_message") {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

type renderCase struct {
	name string
	c    Conversation
	want string
}

func checkRenders(t *testing.T, cases []renderCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Render(c.c)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got\n%q\nwant\n%q", got, c.want)
			}
		})
	}
}
