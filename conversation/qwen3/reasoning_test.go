package qwen3

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func parseAll(thinking bool, pieces []string) (string, string) {
	return parseWith(NewParser(thinking), pieces)
}

func parseWith(p *Parser, pieces []string) (string, string) {
	var r, a strings.Builder
	for _, piece := range pieces {
		x, y := p.Push(piece)
		r.WriteString(x)
		a.WriteString(y)
	}
	x, y := p.Finish()
	r.WriteString(x)
	a.WriteString(y)
	return r.String(), a.String()
}

// everySplit calls fn with every way to cut s into pieces at character
// boundaries.
func everySplit(s string, fn func([]string)) {
	everySplitBounded(s, max(1, utf8.RuneCountInString(s)), fn)
}

func TestParserEverySplit(t *testing.T) {
	cases := []struct {
		thinking          bool
		in                string
		reasoning, answer string
	}{
		{true, "<think>ab</think>cd", "ab", "cd"},
		{true, "<think>\nr\n</think>\n\na", "r", "a"},
		{true, "ab</think> cd", "ab", "cd"},           // template already opened <think>
		{true, "<think>a b", "a b", ""},               // stopped inside the reasoning
		{true, " <thin", "<thin", ""},                 // partial tag at the very end
		{true, "<think>\n\n</think>\n\nhi", "", "hi"}, // /no_think's empty block
		{true, "a</th>b", "a</th>b", ""},              // a near-tag is text
		{true, "é</think>ü", "é", "ü"},
		{false, "hello", "", "hello"},
		{false, "<think>\n\n</think>\n\nhi", "", "hi"}, // stray empty block dropped
		{false, "<think>x</think>y", "", "<think>x</think>y"},
		{false, "  hi <think>", "", "hi <think>"},
	}
	for _, c := range cases {
		n := 0
		everySplit(c.in, func(pieces []string) {
			n++
			r, a := parseAll(c.thinking, pieces)
			if r != c.reasoning || a != c.answer {
				t.Fatalf("thinking=%v %q: got reasoning %q answer %q, want %q %q", c.thinking, pieces, r, a, c.reasoning, c.answer)
			}
		})
		if n < 2 {
			t.Fatalf("%q: only %d splits", c.in, n)
		}
	}
}

func TestParserTokenByToken(t *testing.T) {
	// What the chain test model emits, token by token.
	pieces := []string{"<think>", "Let", " me", " think", ".", "</think>", "\n\n", "Hello", "!"}
	if r, a := parseAll(true, pieces); r != "Let me think." || a != "Hello!" {
		t.Fatalf("got %q %q", r, a)
	}
}

// reference is the non-streaming definition the fuzz target checks against:
// reasoning is the text between the tags with surrounding whitespace
// trimmed, the answer what follows with leading whitespace trimmed.
func reference(s string) (string, string, bool) {
	trim := strings.TrimSpace
	body := strings.TrimLeftFunc(s, unicode.IsSpace)
	body = strings.TrimPrefix(body, thinkOpen)
	i := strings.Index(body, thinkClose)
	if i < 0 {
		return trim(body), "", true
	}
	return trim(body[:i]), strings.TrimLeftFunc(body[i+len(thinkClose):], unicode.IsSpace), true
}

func FuzzParser(f *testing.F) {
	for _, s := range []string{"<think>\nabc\n</think>\n\nanswer", "x</think>y", "<think>a", "</think>", "  <think> </think> ", "é<th</think>"} {
		f.Add(s, uint64(12345))
	}
	f.Fuzz(func(t *testing.T, s string, cuts uint64) {
		if !utf8.ValidString(s) {
			return
		}
		// Reassembly: reasoning + answer is the input minus the tags and the
		// trimmed whitespace, whatever the split.
		var pieces []string
		rest := s
		for rest != "" {
			n := int(cuts%5) + 1
			cuts = cuts/5 + 7
			end := 0
			for k := 0; k < n && end < len(rest); k++ {
				_, size := utf8.DecodeRuneInString(rest[end:])
				end += size
			}
			pieces = append(pieces, rest[:end])
			rest = rest[end:]
		}
		r, a := parseAll(true, pieces)
		wr, wa, _ := reference(s)
		if strings.Count(s, thinkOpen) > 1 || (strings.Contains(s, thinkOpen) && !strings.HasPrefix(strings.TrimLeftFunc(s, unicode.IsSpace), thinkOpen)) {
			// a second or late <think> is plain text: only reassembly holds
			if !strings.Contains(strings.ReplaceAll(strings.ReplaceAll(s, thinkOpen, ""), thinkClose, ""), strings.ReplaceAll(r, thinkOpen, "")) {
				t.Fatalf("%q: reasoning %q is not from the input", s, r)
			}
			return
		}
		if r != wr || a != wa {
			t.Fatalf("%q split %q: got %q / %q, want %q / %q", s, pieces, r, a, wr, wa)
		}
		if !utf8.ValidString(r) || !utf8.ValidString(a) {
			t.Fatal("split a character")
		}
	})
}

// A continued assistant turn: the parser starts where the prefill left off,
// and what it returns is the continuation only.
func TestContinueParser(t *testing.T) {
	const head = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
	cases := []struct {
		name              string
		thinking          bool
		prompt            string
		out               string
		open              bool
		reasoning, answer string
	}{
		{"prefilled reasoning", true, head + "<think>\n\n</think>\n\n<think>\nI should", " check.\n</think>\n\nYes.", true, " check.", "Yes."},
		{"only the opening tag: leading whitespace trimmed", true, head + "<think>\n\n</think>\n\n<think>\n", "\nPlan.</think> ok", true, "Plan.", "ok"},
		{"prefilled answer", true, head + "<think>\n\n</think>\n\nHello", " world</think>", false, "", " world</think>"},
		{"prefilled answer, thinking off", false, head + "<think>\n\n</think>\n\nHello", " world", false, "", " world"},
		{"closed reasoning, empty answer", true, head + "<think>\nplan\n</think>\n\n", "\n\nThe end", false, "", "The end"},
		{"earlier turns do not count", true, "<|im_start|>assistant\n<think>\nold<|im_end|>\n" + head + "<think>\n\n</think>\n\nA", "B", false, "", "B"},
		{"no think block", true, "<|im_start|>assistant\nOnce", " upon", false, "", " upon"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			everySplit(c.out, func(pieces []string) {
				p, open := ContinueParser(c.thinking, c.prompt)
				if open != c.open {
					t.Fatalf("open %v, want %v", open, c.open)
				}
				if r, a := parseWith(p, pieces); r != c.reasoning || a != c.answer {
					t.Fatalf("%q: got reasoning %q answer %q, want %q %q", pieces, r, a, c.reasoning, c.answer)
				}
			})
		})
	}
}
