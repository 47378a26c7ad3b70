package qwen3

import (
	"encoding/json"
	"testing"
)

func TestThinkingSwitch(t *testing.T) {
	yes, no := ptr(true), ptr(false)
	cases := []struct {
		name string
		s    ThinkingSwitch
		def  bool
		want bool
		err  bool
	}{
		{"server default on", ThinkingSwitch{}, true, true, false},
		{"server default off", ThinkingSwitch{}, false, false, false},
		{"chat_template_kwargs", ThinkingSwitch{TemplateKwarg: no}, true, false, false},
		{"kwargs beats top-level", ThinkingSwitch{TemplateKwarg: yes, EnableThinking: no}, false, true, false},
		{"top-level enable_thinking", ThinkingSwitch{EnableThinking: no}, true, false, false},
		{"ollama think false", ThinkingSwitch{Think: json.RawMessage("false")}, true, false, false},
		{"ollama think high", ThinkingSwitch{Think: json.RawMessage(`"high"`)}, false, true, false},
		{"ollama think null is unset", ThinkingSwitch{Think: json.RawMessage("null")}, false, false, false},
		{"reasoning_effort none", ThinkingSwitch{ReasoningEffort: ptr("none")}, true, false, false},
		{"reasoning_effort low", ThinkingSwitch{ReasoningEffort: ptr("low")}, false, true, false},
		{"reasoning_effort bad", ThinkingSwitch{ReasoningEffort: ptr("max")}, true, false, true},
		{"think bad type", ThinkingSwitch{Think: json.RawMessage("3")}, true, false, true},
	}
	for _, c := range cases {
		got, err := c.s.Resolve(c.def)
		if (err != nil) != c.err || (err == nil && got != c.want) {
			t.Errorf("%s: got %v, %v", c.name, got, err)
		}
	}
}
