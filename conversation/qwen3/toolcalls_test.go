package qwen3

import (
	"strings"
	"testing"
)

func TestToolCallsEverySplit(t *testing.T) {
	cases := []struct {
		in      string
		content string
		calls   []Call
	}{
		{"<tool_call>\n{\"name\": \"f\", \"arguments\": {\"b\": 1, \"a\": [2]}}\n</tool_call>", "", []Call{{"f", `{"b":1,"a":[2]}`}}},
		{"ok <tool_call>{\"name\":\"g\"}</tool_call> <tool_call>{\"name\":\"h\",\"arguments\":\"{\\\"x\\\":1}\"}</tool_call>", "ok  ", []Call{{"g", "{}"}, {"h", `{"x":1}`}}},
		{"<tool_call>not json</tool_call>", "<tool_call>not json</tool_call>", nil},
		{"a <tool_ca", "a <tool_ca", nil},
		{"<tool_call>{\"name\":", "<tool_call>{\"name\":", nil},
	}
	for _, c := range cases {
		everySplitBounded(c.in, 14, func(pieces []string) {
			var p ToolCallParser
			var content strings.Builder
			var calls []Call
			for _, piece := range pieces {
				text, cs := p.Push(piece)
				content.WriteString(text)
				calls = append(calls, cs...)
			}
			content.WriteString(p.Finish())
			if content.String() != c.content || len(calls) != len(c.calls) {
				t.Fatalf("%q: content %q calls %v", pieces, content.String(), calls)
			}
			for i := range calls {
				if calls[i] != c.calls[i] {
					t.Fatalf("%q: call %d = %+v, want %+v", pieces, i, calls[i], c.calls[i])
				}
			}
		})
	}
}

// everySplitBounded cuts s at every combination of up to `limit` evenly
// spread boundaries (all of them when s is short), so long inputs stay fast.
func everySplitBounded(s string, limit int, fn func([]string)) {
	runes := []rune(s)
	step := max(1, (len(runes)+limit-1)/limit)
	var bounds []int
	pos := 0
	for i, r := range runes {
		if i > 0 && i%step == 0 {
			bounds = append(bounds, pos)
		}
		pos += len(string(r))
	}
	for mask := 0; mask < 1<<len(bounds); mask++ {
		var pieces []string
		start := 0
		for k, b := range bounds {
			if mask&(1<<k) != 0 {
				pieces = append(pieces, s[start:b])
				start = b
			}
		}
		fn(append(pieces, s[start:]))
	}
	// and one rune at a time
	var pieces []string
	for _, r := range runes {
		pieces = append(pieces, string(r))
	}
	fn(pieces)
}
