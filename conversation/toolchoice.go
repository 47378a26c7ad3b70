package conversation

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/qwen3-lora/qwen3-server/engine"
)

// toolCallRule is Qwen3's tool-call block in GBNF, holding a JSON object
// the engine generates from a JSON schema under the rule "json" (see
// engine.Request.Grammar). "required" allows one or more blocks, a named
// function exactly one.
const (
	toolCallRule       = "qwen3-tool-call ::= \"<tool_call>\\n\" json \"\\n</tool_call>\"\n"
	toolCallsGrammar   = "root ::= qwen3-tool-call (\"\\n\" qwen3-tool-call)*\n" + toolCallRule
	oneToolCallGrammar = "root ::= qwen3-tool-call\n" + toolCallRule
)

type wireTool struct {
	Type     string `json:"type"`
	Function struct {
		Name       string          `json:"name"`
		Parameters json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// forcedToolCalls turns tool_choice "required" or a named function into a
// grammar and the JSON schema of the calls it allows ({"name": const,
// "arguments": the function's parameters}), the way vLLM and llama-server
// do it: the output can only be tool calls. For "auto", "none" or nothing
// it returns empty strings and the model decides.
func forcedToolCalls(tools []json.RawMessage, choice json.RawMessage) (grammar string, schema []byte, err error) {
	raw := strings.TrimSpace(string(choice))
	var mode, named string
	switch raw {
	case "", "null", `"auto"`, `"none"`:
		return "", nil, nil
	case `"required"`:
		mode = "required"
	default:
		var c struct {
			Type     string `json:"type"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if json.Unmarshal(choice, &c) != nil || c.Type != "function" || c.Function.Name == "" {
			return "", nil, engine.Invalid("tool_choice", "%s", `tool_choice must be "auto", "none", "required" or {"type": "function", "function": {"name": ...}}`)
		}
		mode, named = "named", c.Function.Name
	}
	if len(tools) == 0 {
		return "", nil, engine.Invalid("tool_choice", "tool_choice %s needs tools", raw)
	}
	var calls []any
	for i, t := range tools {
		var wt wireTool
		if err := json.Unmarshal(t, &wt); err != nil || wt.Function.Name == "" {
			return "", nil, engine.Invalid(fmt.Sprintf("tools[%d]", i), "each tool must be {\"type\": \"function\", \"function\": {\"name\": ..., \"parameters\": ...}}")
		}
		if named != "" && wt.Function.Name != named {
			continue
		}
		params := wt.Function.Parameters
		if len(params) == 0 || string(params) == "null" {
			params = json.RawMessage(`{"type":"object"}`)
		}
		calls = append(calls, map[string]any{
			"type":       "object",
			"properties": map[string]any{"name": map[string]any{"const": wt.Function.Name}, "arguments": params},
			"required":   []string{"name", "arguments"},
		})
	}
	if len(calls) == 0 {
		return "", nil, engine.Invalid("tool_choice", "tool_choice names the function %q, which is not among the tools", named)
	}
	var s any = calls[0]
	if len(calls) > 1 {
		s = map[string]any{"anyOf": calls}
	}
	schema, _ = json.Marshal(s)
	if mode == "named" {
		return oneToolCallGrammar, schema, nil
	}
	return toolCallsGrammar, schema, nil
}
