package conversation

import (
	"strings"

	"github.com/qwen3-lora/qwen3-server/conversation/qwen3"
	"github.com/qwen3-lora/qwen3-server/engine"
)

// FinishToolCalls is the finish reason of an answer that called tools.
const FinishToolCalls = "tool_calls"

// Output turns one choice's engine chunks into reasoning, answer and tool
// calls as they come, and keeps the whole of each.
type Output struct {
	parser    *qwen3.Parser
	tools     *qwen3.ToolCallParser // nil without tools
	thinking  bool
	calls     []qwen3.Call
	reasoning strings.Builder
	answer    strings.Builder
	// logprobs of every generated token (reasoning included, as vLLM), and
	// how many a stream has sent.
	logprobs []engine.Logprob
	lpSent   int
}

// Delta is what one chunk adds: reasoning text, answer text, and the tool
// calls it completed.
type Delta struct {
	Reasoning, Answer string
	Calls             []qwen3.Call
}

// Empty reports whether the delta carries nothing.
func (d Delta) Empty() bool { return d.Reasoning == "" && d.Answer == "" && len(d.Calls) == 0 }

// NewOutput starts parsing one choice of the plan.
func (p *Plan) NewOutput() *Output {
	o := &Output{parser: qwen3.NewParser(p.Thinking), thinking: p.Thinking}
	if p.Continued {
		o.parser, _ = qwen3.ContinueParser(p.Thinking, p.Request.Prompt)
	}
	if p.Tools {
		o.tools = &qwen3.ToolCallParser{}
	}
	return o
}

// Feed parses one engine chunk.
func (o *Output) Feed(ch engine.Chunk) Delta {
	o.logprobs = append(o.logprobs, ch.Logprobs...)
	r, a := o.parser.Push(ch.Text)
	return o.record(r, a, false)
}

// Finish flushes what the parsers held back (a partial tag at the end).
func (o *Output) Finish() Delta {
	r, a := o.parser.Finish()
	return o.record(r, a, true)
}

func (o *Output) record(r, a string, final bool) Delta {
	var calls []qwen3.Call
	if o.tools != nil {
		a, calls = o.tools.Push(a)
		if final {
			a += o.tools.Finish()
		}
		o.calls = append(o.calls, calls...)
	}
	o.reasoning.WriteString(r)
	o.answer.WriteString(a)
	return Delta{Reasoning: r, Answer: a, Calls: calls}
}

// Answer is the whole answer so far.
func (o *Output) Answer() string { return o.answer.String() }

// Reasoning is the whole reasoning so far, and whether the choice has a
// reasoning part at all: in thinking mode, once text or a reasoning tag was
// seen (an empty <think></think> is reasoning that is empty, not absent).
func (o *Output) Reasoning() (string, bool) {
	r := o.reasoning.String()
	return r, o.thinking && (r != "" || o.parser.ReasoningSeen)
}

// Calls are the tool calls parsed so far.
func (o *Output) Calls() []qwen3.Call { return o.calls }

// Logprobs are the logprobs of every generated token so far.
func (o *Output) Logprobs() []engine.Logprob { return o.logprobs }

// UnsentLogprobs returns the logprobs not handed out yet and marks them
// sent: a stream attaches them to its next event (those of the tokens whose
// text the event carries, and of earlier ones whose text the parser held
// back or dropped, such as tags).
func (o *Output) UnsentLogprobs() []engine.Logprob {
	lp := o.logprobs[o.lpSent:]
	o.lpSent = len(o.logprobs)
	return lp
}

// FinishReason is the engine's, or tool_calls when the answer called tools.
func (o *Output) FinishReason(res *engine.Result) string {
	if len(o.calls) > 0 && res.FinishReason == engine.FinishStop {
		return FinishToolCalls
	}
	return res.FinishReason
}
