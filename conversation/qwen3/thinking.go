package qwen3

import (
	"encoding/json"
	"fmt"
	"strings"
)

// ThinkingSwitch gathers every convention clients use to turn Qwen3's
// thinking on or off, as they arrive in a request body.
type ThinkingSwitch struct {
	// chat_template_kwargs.enable_thinking (vLLM, SGLang, llama-server)
	TemplateKwarg *bool
	// top-level enable_thinking
	EnableThinking *bool
	// Ollama's think: true/false, or an effort string ("low", "high", …)
	Think json.RawMessage
	// OpenAI-style reasoning_effort: "none" turns thinking off
	ReasoningEffort *string
}

// Resolve decides the mode. Precedence, most specific first:
// chat_template_kwargs.enable_thinking, enable_thinking, think,
// reasoning_effort, then the server default. param names the field at fault
// in an error.
func (s ThinkingSwitch) Resolve(serverDefault bool) (thinking bool, err error) {
	switch {
	case s.TemplateKwarg != nil:
		return *s.TemplateKwarg, nil
	case s.EnableThinking != nil:
		return *s.EnableThinking, nil
	case len(s.Think) > 0 && string(s.Think) != "null":
		var b bool
		if json.Unmarshal(s.Think, &b) == nil {
			return b, nil
		}
		var effort string
		if json.Unmarshal(s.Think, &effort) == nil {
			return effortOn(effort, "think")
		}
		return false, fmt.Errorf("think: want true, false or an effort string, got %s", s.Think)
	case s.ReasoningEffort != nil:
		return effortOn(*s.ReasoningEffort, "reasoning_effort")
	}
	return serverDefault, nil
}

func effortOn(effort, param string) (bool, error) {
	switch strings.ToLower(effort) {
	case "none":
		return false, nil
	case "minimal", "low", "medium", "high":
		return true, nil
	}
	return false, fmt.Errorf("%s: want none, minimal, low, medium or high, got %q", param, effort)
}
