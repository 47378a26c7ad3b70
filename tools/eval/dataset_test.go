package eval

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/qwen3-lora/qwen3-server/conversation/qwen3"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func msgs(pairs ...string) []qwen3.Message {
	var out []qwen3.Message
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, qwen3.Message{Role: pairs[i], Content: pairs[i+1]})
	}
	return out
}

type want struct {
	messages         []qwen3.Message
	label, reasoning string
	line             int
}

func check(t *testing.T, d *Dataset, format Format, wants []want) {
	t.Helper()
	if d.Format != format {
		t.Errorf("format %s, want %s", d.Format, format)
	}
	if len(d.Items) != len(wants) {
		t.Fatalf("%d items, want %d", len(d.Items), len(wants))
	}
	for i, w := range wants {
		it := d.Items[i]
		if !reflect.DeepEqual(it.Messages, w.messages) || it.Label != w.label || it.LabelReasoning != w.reasoning || it.Index != i || (w.line != 0 && it.Line != w.line) {
			t.Errorf("item %d: %+v\n label %q reasoning %q line %d\nwant %+v %q %q line %d", i, it.Messages, it.Label, it.LabelReasoning, it.Line, w.messages, w.label, w.reasoning, w.line)
		}
	}
}

func TestAlpacaJSON(t *testing.T) {
	// A JSON array with system, input and history, as LLaMA-Factory's
	// data/alpaca_en_demo.json and its README describe; the think block of
	// a chain-of-thought label is split off.
	p := write(t, t.TempDir(), "test.json", `[
  {"instruction": "Translate", "input": "cat", "output": "chat"},
  {
    "instruction": "What helps a headache?",
    "output": "<think>\nThe user asks about pain.\n</think>\n\nRest and water.",
    "system": "You are a doctor.",
    "history": [["Hi", "Hello, how can I help?"]]
  }
]`)
	d, err := Load(Source{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	check(t, d, FormatAlpaca, []want{
		{msgs("user", "Translate\ncat"), "chat", "", 2},
		{msgs("system", "You are a doctor.", "user", "Hi", "assistant", "Hello, how can I help?", "user", "What helps a headache?"), "Rest and water.", "The user asks about pain.", 3},
	})
	if d.JSONL {
		t.Error("a JSON array read as JSON lines")
	}
}

func TestAlpacaJSONL(t *testing.T) {
	p := write(t, t.TempDir(), "test.jsonl", "{\"instruction\": \"a\", \"output\": \"b\"}\n\n{\"instruction\": \"c\", \"input\": \"d\", \"output\": \"e\"}\n")
	d, err := Load(Source{Path: p, Format: FormatAlpaca})
	if err != nil {
		t.Fatal(err)
	}
	check(t, d, FormatAlpaca, []want{{msgs("user", "a"), "b", "", 1}, {msgs("user", "c\nd"), "e", "", 3}})
	if !d.JSONL {
		t.Error("JSON lines not recognised")
	}
}

func TestShareGPT(t *testing.T) {
	dir := t.TempDir()
	// from/value (LLaMA-Factory's sharegpt) with a system column.
	p := write(t, dir, "sg.json", `[{"conversations": [
  {"from": "human", "value": "Q1"}, {"from": "gpt", "value": "A1"},
  {"from": "human", "value": "Q2"}, {"from": "gpt", "value": "<think>\n\n</think>\n\nA2"}],
 "system": "S"}]`)
	d, err := Load(Source{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	check(t, d, FormatShareGPT, []want{{msgs("system", "S", "user", "Q1", "assistant", "A1", "user", "Q2"), "A2", "", 1}})
	// role/content under messages (OpenAI style), detected without a
	// dataset_info.json entry.
	p = write(t, dir, "msgs.jsonl", `{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}`+"\n")
	d, err = Load(Source{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	check(t, d, FormatShareGPT, []want{{msgs("system", "S", "user", "Q"), "A", "", 1}})
}

func TestDatasetInfo(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "dataset_info.json", `{
  "med": {"file_name": "med.json", "formatting": "sharegpt",
          "columns": {"messages": "dialog", "system": "sys"},
          "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "patient", "assistant_tag": "doctor"}},
  "plain": {"file_name": "plain.json", "columns": {"prompt": "q", "response": "a"}}
}`)
	write(t, dir, "med.json", `[{"dialog": [{"speaker": "patient", "text": "Q"}, {"speaker": "doctor", "text": "A"}], "sys": "S"}]`)
	write(t, dir, "plain.json", `[{"q": "Q", "a": "A"}]`)
	for name, w := range map[string]want{
		"med":   {msgs("system", "S", "user", "Q"), "A", "", 1},
		"plain": {msgs("user", "Q"), "A", "", 1},
	} {
		src, err := DatasetInfo(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Load(src)
		if err != nil {
			t.Fatal(name, err)
		}
		f := FormatAlpaca
		if name == "med" {
			f = FormatShareGPT
		}
		check(t, d, f, []want{w})
	}
	if _, err := DatasetInfo(filepath.Join(dir, "dataset_info.json"), "nope"); err == nil || !strings.Contains(err.Error(), "med") {
		t.Errorf("unknown entry: %v, want an error listing the entries", err)
	}
}

// The raw-chat variant: Qwen3's markup typed into alpaca fields, with a
// think block, with an empty one, and with the misspelt empty one.
func TestRawChatUnwrapped(t *testing.T) {
	p := write(t, t.TempDir(), "raw.jsonl", strings.Join([]string{
		`{"instruction": "<|im_start|>system\nYou are a doctor.<|im_end|>\n<|im_start|>user\n头痛怎么办？<|im_end|>\n<|im_start|>assistant\n", "output": "<|im_start|>assistant\n<think>\n用户问头痛。\n</think> \n 多休息，多喝水。<|im_end|>"}`,
		`{"instruction": "<|im_start|>user\nHi<|im_end|>\n", "output": "<|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|>"}`,
		`{"instruction": "<|im_start|>user\nHi again<|im_end|>\n", "output": "<|im_start|>assistant\n<think>\n\n<think>\nHello again!<|im_end|>"}`,
		`{"instruction": "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n", "output": "A2"}`,
	}, "\n"))
	d, err := Load(Source{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	check(t, d, FormatAlpaca, []want{
		{msgs("system", "You are a doctor.", "user", "头痛怎么办？"), "多休息，多喝水。", "用户问头痛。", 1},
		{msgs("user", "Hi"), "Hello!", "", 2},
		{msgs("user", "Hi again"), "Hello again!", "", 3},
		{msgs("user", "Q1", "assistant", "A1", "user", "Q2"), "A2", "", 4},
	})
}

func TestSplitThinkAndJoin(t *testing.T) {
	for _, c := range []struct{ in, r, a string }{
		{"plain", "", "plain"},
		{"<think>\nR\n</think>\n\nA", "R", "A"},
		{"<think>\n\n</think>\n\nA", "", "A"},
		{"<think>\n\n<think>\nA", "", "A"},
		{"<think>\nonly reasoning, cut off", "only reasoning, cut off", ""},
	} {
		r, a := SplitThink(c.in)
		if r != c.r || a != c.a {
			t.Errorf("SplitThink(%q) = %q, %q; want %q, %q", c.in, r, a, c.r, c.a)
		}
	}
	if got := JoinThink("R", "A"); got != "<think>\nR\n</think>\n\nA" {
		t.Errorf("JoinThink: %q", got)
	}
	if r, a := SplitThink(JoinThink("R", "A")); r != "R" || a != "A" {
		t.Errorf("SplitThink(JoinThink) = %q, %q", r, a)
	}
}

// Bad records are reported with their line; with SkipBad the rest loads.
func TestBadLines(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "bad.jsonl", strings.Join([]string{
		`{"instruction": "ok", "output": "fine"}`,
		`{"instruction": "not json"`,
		`{"output": "no instruction"}`,
		`{"instruction": "empty answer", "output": "  "}`,
		`{"instruction": "only reasoning", "output": "<think>\nR\n</think>\n\n"}`,
		`{"instruction": 3, "output": "x"}`,
		`{"instruction": "ok 2", "output": "fine 2"}`,
	}, "\n"))
	_, err := Load(Source{Path: p})
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 || le.File != p {
		t.Fatalf("error %v, want a *LineError at %s:2", err, p)
	}
	d, err := Load(Source{Path: p, SkipBad: true})
	if err != nil {
		t.Fatal(err)
	}
	check(t, d, FormatAlpaca, []want{{msgs("user", "ok"), "fine", "", 1}, {msgs("user", "ok 2"), "fine 2", "", 7}})
	var lines []int
	for _, s := range d.Skipped {
		lines = append(lines, s.Line)
	}
	if !reflect.DeepEqual(lines, []int{2, 3, 4, 5, 6}) {
		t.Errorf("skipped lines %v, want [2 3 4 5 6]", lines)
	}
	for _, s := range d.Skipped {
		if !strings.HasPrefix(s.Error(), p+":") {
			t.Errorf("%q does not name the file and line", s.Error())
		}
	}
	// In a JSON array the line is where the record starts.
	p = write(t, dir, "bad.json", "[\n  {\"instruction\": \"a\", \"output\": \"b\"},\n  {\"instruction\": \"c\",\n   \"output\": \"\"}\n]")
	if _, err := Load(Source{Path: p}); !errors.As(err, &le) || le.Line != 3 {
		t.Errorf("array: %v, want a *LineError at line 3", err)
	}
	p = write(t, dir, "sg.jsonl", `{"conversations": [{"from": "gpt", "value": "A"}]}`+"\n")
	if _, err := Load(Source{Path: p}); !errors.As(err, &le) || le.Line != 1 {
		t.Errorf("sharegpt without a user turn: %v, want a *LineError at line 1", err)
	}
}
