// Package qwen3 is the Qwen3 chat format itself: the official chat template
// rendered byte for byte in Go, the thinking switch in every convention
// clients use, the reasoning tags, and the streaming parsers that separate
// reasoning, answer and <tool_call> blocks (explicit state machines, tested
// with every chunk split). The conversation package above it plans
// requests; this one imports nothing of the project.
package qwen3

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// Message is one chat turn as the template sees it. Content is already
// flattened to text (OpenAI content parts are joined by the API layer).
type Message struct {
	Role             string
	Content          string
	ReasoningContent *string // nil: not given (the template then looks for <think> in Content)
	ToolCalls        []ToolCall
}

// ToolCall is an assistant tool call. Arguments is the raw JSON the client
// sent: an object (rendered with tojson) or a string (rendered verbatim).
type ToolCall struct {
	Name      string
	Arguments json.RawMessage
}

// Conversation is the template's input.
type Conversation struct {
	Messages            []Message
	Tools               []json.RawMessage // each tool as the client sent it
	AddGenerationPrompt bool
	// ContinueFinalMessage leaves the final (assistant) message open so that
	// the model continues it: the assistant prefill. It excludes
	// AddGenerationPrompt, as in transformers and vLLM.
	ContinueFinalMessage bool
	// EnableThinking nil or true: the model decides (it normally opens
	// <think>); false: the prompt ends with an empty think block.
	EnableThinking *bool
}

const toolsPreamble = "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>"
const toolsPostamble = "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"

// Render produces exactly what the official Qwen3 chat template (the Jinja
// template in Qwen3-4B's tokenizer_config.json, rendered by transformers)
// produces for c. The structure below follows the template's statements in
// order; comments quote the parts whose behaviour is easy to get wrong.
func Render(c Conversation) (string, error) {
	if c.ContinueFinalMessage {
		if c.AddGenerationPrompt {
			return "", fmt.Errorf("%w: add_generation_prompt cannot be set with it", ErrContinue)
		}
		if len(c.Messages) == 0 || c.Messages[len(c.Messages)-1].Role != "assistant" {
			return "", fmt.Errorf("%w: the last message must be an assistant message", ErrContinue)
		}
	}
	msgs := c.Messages
	var b strings.Builder
	if len(c.Tools) > 0 {
		b.WriteString("<|im_start|>system\n")
		if len(msgs) > 0 && msgs[0].Role == "system" {
			b.WriteString(msgs[0].Content + "\n\n")
		}
		b.WriteString(toolsPreamble)
		for _, t := range c.Tools {
			js, err := PyJSON(t)
			if err != nil {
				return "", fmt.Errorf("tools: %w", err)
			}
			b.WriteString("\n" + js)
		}
		b.WriteString(toolsPostamble)
	} else if len(msgs) > 0 && msgs[0].Role == "system" {
		b.WriteString("<|im_start|>system\n" + msgs[0].Content + "<|im_end|>\n")
	}

	// The last "real" user query: the latest user message that is not a
	// wrapped tool response. Reasoning of assistant turns is kept only
	// after it.
	lastQuery := len(msgs) - 1
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		if m.Role == "user" && !(strings.HasPrefix(m.Content, "<tool_response>") && strings.HasSuffix(m.Content, "</tool_response>")) {
			lastQuery = i
			break
		}
	}

	for i, m := range msgs {
		last := i == len(msgs)-1
		switch {
		case m.Role == "user" || (m.Role == "system" && i != 0):
			b.WriteString("<|im_start|>" + m.Role + "\n" + m.Content + "<|im_end|>\n")
		case m.Role == "assistant":
			content := m.Content
			reasoning := ""
			if m.ReasoningContent != nil {
				reasoning = *m.ReasoningContent
			} else if strings.Contains(m.Content, "</think>") {
				// content.split('</think>')[-1].lstrip('\n') and
				// content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n')
				parts := strings.Split(m.Content, "</think>")
				content = strings.TrimLeft(parts[len(parts)-1], "\n")
				before := strings.Split(strings.TrimRight(parts[0], "\n"), "<think>")
				reasoning = strings.TrimLeft(before[len(before)-1], "\n")
			}
			if i > lastQuery && (last || reasoning != "") {
				b.WriteString("<|im_start|>assistant\n<think>\n" + strings.Trim(reasoning, "\n") + "\n</think>\n\n" + strings.TrimLeft(content, "\n"))
			} else {
				b.WriteString("<|im_start|>assistant\n" + content)
			}
			for j, tc := range m.ToolCalls {
				if (j == 0 && content != "") || j > 0 {
					b.WriteString("\n")
				}
				b.WriteString("<tool_call>\n{\"name\": \"" + tc.Name + "\", \"arguments\": ")
				args, err := renderArguments(tc.Arguments)
				if err != nil {
					return "", fmt.Errorf("messages[%d].tool_calls[%d].arguments: %w", i, j, err)
				}
				b.WriteString(args + "}\n</tool_call>")
			}
			b.WriteString("<|im_end|>\n")
		case m.Role == "tool":
			if i == 0 || msgs[i-1].Role != "tool" {
				b.WriteString("<|im_start|>user")
			}
			b.WriteString("\n<tool_response>\n" + m.Content + "\n</tool_response>")
			if last || msgs[i+1].Role != "tool" {
				b.WriteString("<|im_end|>\n")
			}
		}
		// Other roles (a leading system message handled above) render nothing,
		// as in the template; the API layer refuses unknown roles earlier.
	}
	if c.AddGenerationPrompt {
		b.WriteString("<|im_start|>assistant\n")
		if c.EnableThinking != nil && !*c.EnableThinking {
			b.WriteString("<think>\n\n</think>\n\n")
		}
	}
	if c.ContinueFinalMessage {
		return cutAfterFinal(b.String(), msgs[len(msgs)-1].Content)
	}
	return b.String(), nil
}

// ErrContinue marks the errors of ContinueFinalMessage.
var ErrContinue = errors.New("continue_final_message")

// cutAfterFinal is transformers' continue_final_message
// (apply_chat_template): the rendered chat is cut right after the last
// occurrence of the final message's content, so its end-of-turn marker is
// gone. The content is searched stripped of whitespace (templates may trim
// it); its trailing whitespace is kept only when the template kept it. An
// empty content matches at the very end, leaving the chat whole, as there.
func cutAfterFinal(rendered, final string) (string, error) {
	stripped := strings.TrimFunc(final, pySpace)
	loc := strings.LastIndex(rendered, stripped)
	if loc < 0 {
		return "", fmt.Errorf("%w: the final message does not appear in the chat after applying the chat template (the template rewrites it: for Qwen3, write a reasoning prefix as \"<think>\\n...\\n</think>\\n\\n\" or use reasoning_content)", ErrContinue)
	}
	lead := strings.TrimLeftFunc(final, pySpace)
	if end := loc + len(lead); end <= len(rendered) && rendered[loc:end] == final {
		return rendered[:end], nil
	}
	return rendered[:loc+len(stripped)], nil
}

// pySpace is Python's str.isspace, which strip() uses: Unicode white space
// plus the ASCII separators U+001C..U+001F that Go's unicode.IsSpace leaves out.
func pySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// renderArguments: "{%- if tool_call.arguments is string %} verbatim
// {%- else %} tojson".
func renderArguments(raw json.RawMessage) (string, error) {
	trimmed := strings.TrimSpace(string(raw))
	if trimmed == "" {
		return "{}", nil
	}
	if trimmed[0] == '"' {
		var s string
		if err := json.Unmarshal([]byte(trimmed), &s); err != nil {
			return "", err
		}
		return s, nil
	}
	return PyJSON([]byte(trimmed))
}

// OfficialTemplate reports whether a GGUF's tokenizer.chat_template is the
// official Qwen3 template (or a byte-identical copy), which Render
// reproduces. Fine-tunes made with LLaMA-Factory's qwen3 template keep it.
func OfficialTemplate(t string) bool {
	return strings.TrimSpace(t) == strings.TrimSpace(officialTemplate)
}
