package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/qwen3-lora/qwen3-server/conversation/qwen3"
)

// Item is one test sample: the conversation up to the turn to predict, and
// the label split into answer and reasoning.
type Item struct {
	// Index is the item's position in the evaluated set (after split and
	// limit); prediction files key on it.
	Index int
	// Line is where the record starts in its file (1-based).
	Line int
	// Messages are the system prompt, the history and the final user turn.
	Messages []qwen3.Message
	// Label is the answer the model should give; LabelReasoning the label's
	// think block (empty when it has none or an empty one).
	Label, LabelReasoning string
	// Raw is the record as it was in the file (written back by --split).
	Raw json.RawMessage
}

// Prompt is the final user turn, the text LLaMA-Factory's users read as
// the question.
func (it *Item) Prompt() string {
	if len(it.Messages) == 0 {
		return ""
	}
	return it.Messages[len(it.Messages)-1].Content
}

// Format names an input format.
type Format string

const (
	FormatAuto     Format = "auto"
	FormatAlpaca   Format = "alpaca"
	FormatShareGPT Format = "sharegpt"
)

// LineError is a record that cannot be evaluated, with where it is.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// Columns and Tags are a dataset_info.json entry's mapping of LLaMA-Factory's
// fields to the file's; empty fields take LLaMA-Factory's defaults.
type Columns struct {
	Prompt   string `json:"prompt"`
	Query    string `json:"query"`
	Response string `json:"response"`
	System   string `json:"system"`
	History  string `json:"history"`
	Messages string `json:"messages"`
}

type Tags struct {
	RoleTag      string `json:"role_tag"`
	ContentTag   string `json:"content_tag"`
	UserTag      string `json:"user_tag"`
	AssistantTag string `json:"assistant_tag"`
	SystemTag    string `json:"system_tag"`
}

// Source says how to read a dataset file.
type Source struct {
	Path    string
	Format  Format
	Columns Columns
	Tags    Tags
	// SkipBad drops records that cannot be evaluated (reported through
	// Skipped) instead of failing on the first.
	SkipBad bool
}

// DatasetInfo resolves a dataset_info.json entry (LLaMA-Factory's registry
// of datasets): info is the file or its folder, name the entry.
func DatasetInfo(info, name string) (Source, error) {
	if st, err := os.Stat(info); err == nil && st.IsDir() {
		info = filepath.Join(info, "dataset_info.json")
	}
	b, err := os.ReadFile(info)
	if err != nil {
		return Source{}, err
	}
	var entries map[string]struct {
		FileName   string  `json:"file_name"`
		Formatting string  `json:"formatting"`
		Columns    Columns `json:"columns"`
		Tags       Tags    `json:"tags"`
	}
	if err := json.Unmarshal(b, &entries); err != nil {
		return Source{}, fmt.Errorf("%s: %w", info, err)
	}
	e, ok := entries[name]
	if !ok {
		names := make([]string, 0, len(entries))
		for n := range entries {
			names = append(names, n)
		}
		return Source{}, fmt.Errorf("%s has no dataset %q (it has %s)", info, name, strings.Join(names, ", "))
	}
	if e.FileName == "" {
		return Source{}, fmt.Errorf("%s: dataset %q has no file_name (hub datasets are not read)", info, name)
	}
	f := Format(e.Formatting)
	if f == "" {
		f = FormatAlpaca // LLaMA-Factory's default formatting
	}
	return Source{Path: filepath.Join(filepath.Dir(info), e.FileName), Format: f, Columns: e.Columns, Tags: e.Tags}, nil
}

// Dataset is a loaded test set.
type Dataset struct {
	Items []*Item
	// Format is the format read (the detected one under auto).
	Format Format
	// Skipped are the records dropped under SkipBad.
	Skipped []*LineError
	// JSONL: the file had one record per line (split files are written the
	// same way either way: JSONL, which LLaMA-Factory reads).
	JSONL bool
}

// Load reads a dataset file: a JSON array or JSON lines.
func Load(src Source) (*Dataset, error) {
	b, err := os.ReadFile(src.Path)
	if err != nil {
		return nil, err
	}
	recs, jsonl, err := records(b)
	if err != nil {
		var le *LineError
		if errors.As(err, &le) {
			le.File = src.Path
			if !src.SkipBad || !jsonl {
				return nil, err
			}
		} else {
			return nil, fmt.Errorf("%s: %w", src.Path, err)
		}
	}
	d := &Dataset{Format: src.Format, JSONL: jsonl}
	if d.Format == "" || d.Format == FormatAuto {
		d.Format = detect(recs, src.Columns)
	}
	if d.Format != FormatAlpaca && d.Format != FormatShareGPT {
		return nil, fmt.Errorf("unknown format %q (alpaca or sharegpt)", d.Format)
	}
	cols, tags := src.Columns.withDefaults(d.Format), src.Tags.withDefaults()
	for _, r := range recs {
		var it *Item
		err := r.err
		if err == nil {
			if d.Format == FormatAlpaca {
				it, err = alpacaItem(r.fields, cols)
			} else {
				it, err = sharegptItem(r.fields, cols, tags)
			}
		}
		if err == nil {
			err = it.unwrapRawChat()
		}
		if err != nil {
			le := &LineError{File: src.Path, Line: r.line, Err: err}
			if !src.SkipBad {
				return nil, le
			}
			d.Skipped = append(d.Skipped, le)
			continue
		}
		it.Line, it.Raw, it.Index = r.line, r.raw, len(d.Items)
		d.Items = append(d.Items, it)
	}
	return d, nil
}

type record struct {
	line   int
	raw    json.RawMessage
	fields map[string]json.RawMessage
	err    error // the line is not a JSON object
}

// records splits the file into JSON objects with their line numbers. A JSON
// array that does not parse fails whole (its records cannot be told
// apart); in JSON lines each bad line is its own error.
func records(b []byte) ([]record, bool, error) {
	trimmed := bytes.TrimLeft(b, " \t\r\n\ufeff")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		return arrayRecords(b)
	}
	var out []record
	err := eachLine(b, func(n int, line []byte) error {
		r := record{line: n, raw: append(json.RawMessage(nil), line...)}
		if err := json.Unmarshal(line, &r.fields); err != nil {
			r.err = fmt.Errorf("not a JSON object: %v", err)
		}
		out = append(out, r)
		return nil
	})
	return out, true, err
}

// eachLine calls fn with every non-blank line of b (trimmed) and its
// 1-based number, until fn returns an error or errStop.
func eachLine(b []byte, fn func(n int, line []byte) error) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := fn(n, line); err == errStop {
			return nil
		} else if err != nil {
			return err
		}
	}
	return sc.Err()
}

// errStop ends eachLine early without an error.
var errStop = errors.New("stop")

func arrayRecords(b []byte) ([]record, bool, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	lineAt := func(off int64) int { return 1 + bytes.Count(b[:off], []byte{'\n'}) }
	if _, err := dec.Token(); err != nil {
		return nil, false, &LineError{Line: 1, Err: err}
	}
	var out []record
	for dec.More() {
		// InputOffset is after the previous value; the record starts at
		// the next non-space, non-comma byte.
		off := dec.InputOffset()
		for off < int64(len(b)) && strings.ContainsRune(" \t\r\n,", rune(b[off])) {
			off++
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, false, &LineError{Line: lineAt(off), Err: fmt.Errorf("not JSON: %v", err)}
		}
		r := record{line: lineAt(off), raw: raw}
		if err := json.Unmarshal(raw, &r.fields); err != nil {
			r.err = errors.New("a record must be a JSON object")
		}
		out = append(out, r)
	}
	return out, false, nil
}

// detect is sharegpt when the first object has the messages column (or
// conversations / messages), else alpaca.
func detect(recs []record, c Columns) Format {
	for _, r := range recs {
		if r.fields == nil {
			continue
		}
		for _, k := range []string{c.Messages, "conversations", "messages"} {
			if _, ok := r.fields[k]; ok && k != "" {
				return FormatShareGPT
			}
		}
		return FormatAlpaca
	}
	return FormatAlpaca
}

// def sets an unset field to its default.
func def(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

func (c Columns) withDefaults(f Format) Columns {
	if f == FormatAlpaca {
		def(&c.Prompt, "instruction")
		def(&c.Query, "input")
		def(&c.Response, "output")
	} else {
		def(&c.Messages, "conversations")
	}
	def(&c.System, "system")
	if f == FormatAlpaca {
		def(&c.History, "history")
	}
	return c
}

func (t Tags) withDefaults() Tags {
	def(&t.RoleTag, "from")
	def(&t.ContentTag, "value")
	def(&t.UserTag, "human")
	def(&t.AssistantTag, "gpt")
	def(&t.SystemTag, "system")
	return t
}

// str reads an optional string field; a present field of another type is
// an error.
func str(f map[string]json.RawMessage, key string) (string, error) {
	raw, ok := f[key]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("field %q must be a string", key)
	}
	return s, nil
}

// alpacaItem is LLaMA-Factory's alpaca converter: the prompt is the
// instruction and the input joined by a newline, history pairs come
// before it, the output is the label.
func alpacaItem(f map[string]json.RawMessage, c Columns) (*Item, error) {
	var instr, input, output, system string
	for _, field := range []struct {
		key string
		dst *string
	}{{c.Prompt, &instr}, {c.Query, &input}, {c.Response, &output}, {c.System, &system}} {
		var err error
		if *field.dst, err = str(f, field.key); err != nil {
			return nil, err
		}
	}
	if _, ok := f[c.Prompt]; !ok {
		return nil, fmt.Errorf("missing field %q", c.Prompt)
	}
	if _, ok := f[c.Response]; !ok {
		return nil, fmt.Errorf("missing field %q", c.Response)
	}
	it := &Item{}
	if system != "" {
		it.Messages = append(it.Messages, qwen3.Message{Role: "system", Content: system})
	}
	if raw, ok := f[c.History]; ok && string(raw) != "null" {
		var hist [][]string
		if err := json.Unmarshal(raw, &hist); err != nil {
			return nil, fmt.Errorf("field %q must be a list of [instruction, response] pairs", c.History)
		}
		for i, h := range hist {
			if len(h) != 2 {
				return nil, fmt.Errorf("%s[%d] must be an [instruction, response] pair", c.History, i)
			}
			it.Messages = append(it.Messages, qwen3.Message{Role: "user", Content: h[0]}, qwen3.Message{Role: "assistant", Content: h[1]})
		}
	}
	prompt := instr
	if input != "" {
		prompt = instr + "\n" + input
	}
	it.Messages = append(it.Messages, qwen3.Message{Role: "user", Content: prompt})
	it.Label = output
	return it, nil
}

// sharegptItem is LLaMA-Factory's sharegpt converter: the last message is
// the label (an assistant turn), the ones before the prompt.
func sharegptItem(f map[string]json.RawMessage, c Columns, t Tags) (*Item, error) {
	key := c.Messages
	raw, ok := f[key]
	if !ok && key == "conversations" {
		key = "messages"
		raw, ok = f[key]
	}
	if !ok {
		return nil, fmt.Errorf("missing field %q", c.Messages)
	}
	var msgs []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return nil, fmt.Errorf("field %q must be a list of messages", key)
	}
	// OpenAI-style role/content lists work without a dataset_info entry.
	roleTag, contentTag := t.RoleTag, t.ContentTag
	if len(msgs) > 0 {
		if _, ok := msgs[0][roleTag]; !ok {
			if _, ok := msgs[0]["role"]; ok {
				roleTag, contentTag = "role", "content"
			}
		}
	}
	roles := map[string]string{t.UserTag: "user", t.AssistantTag: "assistant", t.SystemTag: "system",
		"user": "user", "assistant": "assistant", "system": "system", "human": "user", "gpt": "assistant"}
	it := &Item{}
	system, err := str(f, c.System)
	if err != nil {
		return nil, err
	}
	if system != "" {
		it.Messages = append(it.Messages, qwen3.Message{Role: "system", Content: system})
	}
	for i, m := range msgs {
		from, err := str(m, roleTag)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %v", key, i, err)
		}
		text, err := str(m, contentTag)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %v", key, i, err)
		}
		role, ok := roles[from]
		if !ok {
			return nil, fmt.Errorf("%s[%d]: unknown role %q (%s, %s or %s)", key, i, from, t.UserTag, t.AssistantTag, t.SystemTag)
		}
		it.Messages = append(it.Messages, qwen3.Message{Role: role, Content: text})
	}
	n := len(it.Messages)
	if n < 2 || it.Messages[n-1].Role != "assistant" || it.Messages[n-2].Role != "user" {
		return nil, fmt.Errorf("%s must end with a user turn and the assistant answer to predict", key)
	}
	it.Label = it.Messages[n-1].Content
	it.Messages = it.Messages[:n-1]
	return it, nil
}

// The raw-chat variant: Qwen3's chat markup typed into the fields.
var (
	imBlock = regexp.MustCompile(`(?s)<\|im_start\|>(system|user|assistant)\n(.*?)(?:<\|im_end\|>|$)`)
	// misspeltEmpty is the empty think block some conversion scripts write
	// with an opening tag where the closing one belongs.
	misspeltEmpty = regexp.MustCompile(`^<think>\s*<think>\s*`)
)

// unwrapRawChat turns the raw-chat variant into plain turns: a user turn
// holding <|im_start|> blocks becomes those turns (the last user block is
// the prompt), and the label loses its assistant markup and has its think
// block split off. Plain labels get the same think-block split, so that
// LLaMA-Factory's thinking data (labels with <think>…</think>) is scored on
// the answer. An empty answer is an error.
func (it *Item) unwrapRawChat() error {
	var msgs []qwen3.Message
	for _, m := range it.Messages {
		blocks := imBlock.FindAllStringSubmatch(m.Content, -1)
		if len(blocks) == 0 {
			msgs = append(msgs, m)
			continue
		}
		for _, b := range blocks {
			if b[1] == "assistant" && strings.TrimSpace(b[2]) == "" {
				continue // the generation prompt typed at the end
			}
			msgs = append(msgs, qwen3.Message{Role: b[1], Content: strings.TrimSpace(b[2])})
		}
	}
	if len(msgs) == 0 || msgs[len(msgs)-1].Role != "user" {
		return errors.New("the prompt must end with a user turn")
	}
	if strings.TrimSpace(msgs[len(msgs)-1].Content) == "" {
		return errors.New("empty prompt")
	}
	it.Messages = msgs
	label := strings.TrimSpace(it.Label)
	label = strings.TrimPrefix(label, "<|im_start|>assistant\n")
	label = strings.TrimSpace(strings.TrimSuffix(label, "<|im_end|>"))
	it.LabelReasoning, it.Label = SplitThink(label)
	if it.Label == "" {
		return errors.New("empty answer (label)")
	}
	return nil
}

// SplitThink splits a text that may open with a think block into reasoning
// and answer, with the server's reasoning parser (the misspelt empty block
// "<think>\n\n<think>\n" counts as empty). Text without a block is all
// answer.
func SplitThink(text string) (reasoning, answer string) {
	text = strings.TrimLeft(text, " \t\r\n")
	if loc := misspeltEmpty.FindStringIndex(text); loc != nil && !strings.Contains(text, "</think>") {
		return "", strings.TrimSpace(text[loc[1]:])
	}
	p := qwen3.NewParser(strings.HasPrefix(text, qwen3.ThinkOpen))
	r1, a1 := p.Push(text)
	r2, a2 := p.Finish()
	return strings.TrimSpace(r1 + r2), strings.TrimSpace(a1 + a2)
}

// JoinThink is the text LLaMA-Factory's predict scores when labels carry
// the think block (--score full): the block as Qwen3 writes it, then the
// answer; without reasoning, the answer alone.
func JoinThink(reasoning, answer string) string {
	if reasoning == "" {
		return answer
	}
	return qwen3.ThinkOpen + "\n" + reasoning + qwen3.ReasoningEnd + answer
}

// WriteJSONL writes the items' original records, one per line.
func WriteJSONL(path string, items []*Item) error {
	var buf bytes.Buffer
	for _, it := range items {
		var c bytes.Buffer
		if err := json.Compact(&c, it.Raw); err != nil {
			return err
		}
		buf.Write(c.Bytes())
		buf.WriteByte('\n')
	}
	return writeFileAtomic(path, buf.Bytes())
}

// writeFileAtomic replaces path only once the whole content is written.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
