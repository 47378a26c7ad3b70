package qwen3

import (
	"bytes"
	"encoding/json"
	"strings"
)

const (
	toolOpen  = "<tool_call>"
	toolClose = "</tool_call>"
)

// Call is a tool call parsed from Qwen3's output. Arguments is compact JSON
// text, as OpenAI's API carries it.
type Call struct {
	Name      string
	Arguments string
}

// ToolCallParser extracts Qwen3's tool calls from the answer stream:
//
//	<tool_call>
//	{"name": "get_weather", "arguments": {"city": "Hangzhou"}}
//	</tool_call>
//
// Text outside the blocks passes through; a possible partial "<tool_call>"
// is held back. A block whose JSON does not parse is returned as text,
// untouched, so nothing the model wrote is lost.
type ToolCallParser struct {
	hold   string
	inCall bool
	block  strings.Builder
}

// Push consumes answer text and returns text to emit and completed calls.
func (p *ToolCallParser) Push(text string) (string, []Call) {
	p.hold += text
	var out strings.Builder
	var calls []Call
	for {
		if !p.inCall {
			i := strings.Index(p.hold, toolOpen)
			if i < 0 {
				keep := partialSuffix(p.hold, toolOpen)
				out.WriteString(p.hold[:len(p.hold)-keep])
				p.hold = p.hold[len(p.hold)-keep:]
				break
			}
			out.WriteString(p.hold[:i])
			p.hold = p.hold[i+len(toolOpen):]
			p.inCall = true
			p.block.Reset()
			continue
		}
		i := strings.Index(p.hold, toolClose)
		if i < 0 {
			keep := partialSuffix(p.hold, toolClose)
			p.block.WriteString(p.hold[:len(p.hold)-keep])
			p.hold = p.hold[len(p.hold)-keep:]
			break
		}
		p.block.WriteString(p.hold[:i])
		p.hold = p.hold[i+len(toolClose):]
		p.inCall = false
		if c, ok := parseCall(p.block.String()); ok {
			calls = append(calls, c)
		} else {
			out.WriteString(toolOpen + p.block.String() + toolClose)
		}
	}
	return out.String(), calls
}

// Finish flushes: an unterminated block is returned as text.
func (p *ToolCallParser) Finish() string {
	s := p.hold
	if p.inCall {
		s = toolOpen + p.block.String() + p.hold
	}
	p.hold, p.inCall = "", false
	p.block.Reset()
	return s
}

func parseCall(body string) (Call, bool) {
	var v struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(body)), &v); err != nil || v.Name == "" {
		return Call{}, false
	}
	args := bytes.TrimSpace(v.Arguments)
	if len(args) == 0 || string(args) == "null" {
		args = []byte("{}")
	}
	if args[0] == '"' { // arguments given as a JSON string already
		var s string
		if json.Unmarshal(args, &s) == nil {
			return Call{Name: v.Name, Arguments: s}, true
		}
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, args); err != nil {
		return Call{}, false
	}
	return Call{Name: v.Name, Arguments: compact.String()}, true
}
