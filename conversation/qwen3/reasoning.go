package qwen3

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	thinkOpen  = "<think>"
	thinkClose = "</think>"
)

// ThinkOpen is the tag that opens the reasoning, and ReasoningEnd what
// Qwen3 writes to close it: the server forces exactly this when a thinking
// budget runs out, so the answer that follows looks as the model's own.
const (
	ThinkOpen    = thinkOpen
	ReasoningEnd = "\n" + thinkClose + "\n\n"
)

type parserState int

const (
	stStart      parserState = iota // thinking on: before anything
	stReasonLead                    // after <think>: skipping leading whitespace
	stReason                        // inside the reasoning
	stAnswerLead                    // after </think>: skipping leading whitespace
	stAnswer                        // the answer
	stOffStart                      // thinking off: before anything
	stOffThink                      // thinking off: inside a think block at the start
)

// Parser separates Qwen3's reasoning from its answer in a stream of text
// pieces (each piece whole UTF-8 characters, as the engine delivers them).
// It is a state machine that holds back only what it cannot classify yet: a
// possible partial tag, and whitespace that may turn out to be trimmed.
//
// Thinking on: the output may or may not begin with <think>; everything up
// to </think> is reasoning; whitespace right inside the tags and right after
// </think> is trimmed (as vLLM's qwen3 parser does). If the stream ends
// inside the reasoning, all of it is reasoning.
//
// Thinking off: everything is answer, except that a think block at the start
// whose content is only whitespace (the empty block the model may repeat)
// is dropped; a non-empty block is left in the answer untouched.
type Parser struct {
	state    parserState
	hold     string // text not yet classified
	thinking bool
	// ReasoningSeen tells whether any reasoning text was emitted.
	ReasoningSeen bool
}

// NewParser starts a parser for a response with thinking on or off.
func NewParser(thinking bool) *Parser {
	p := &Parser{thinking: thinking, state: stStart}
	if !thinking {
		p.state = stOffStart
	}
	return p
}

// ContinueParser is the parser for output that continues prompt, a chat
// rendered with ContinueFinalMessage. The output is only the continuation,
// so the parser starts where the prefilled assistant turn leaves off: inside
// the reasoning when the turn has a <think> not closed after it (open is
// then true, whatever thinking says), else in the answer. Whitespace at the
// start of the continuation is trimmed only when the prefilled part of that
// section is itself empty, as it would have been had the model written it.
func ContinueParser(thinking bool, prompt string) (p *Parser, open bool) {
	p = NewParser(thinking)
	turn := prompt
	if i := strings.LastIndex(prompt, assistantTurn); i >= 0 {
		turn = prompt[i+len(assistantTurn):]
	}
	o, c := strings.LastIndex(turn, thinkOpen), strings.LastIndex(turn, thinkClose)
	if o > c {
		p.state = stReason
		if strings.TrimSpace(turn[o+len(thinkOpen):]) == "" {
			p.state = stReasonLead
		}
		return p, true
	}
	if c >= 0 {
		turn = turn[c+len(thinkClose):]
	}
	p.state = stAnswer
	if strings.TrimSpace(turn) == "" {
		p.state = stAnswerLead
	}
	return p, false
}

// assistantTurn opens an assistant message in the rendered chat.
const assistantTurn = "<|im_start|>assistant\n"

// Push consumes a piece and returns what can be emitted now.
func (p *Parser) Push(piece string) (reasoning, answer string) {
	p.hold += piece
	var r, a strings.Builder
	for {
		progressed := p.step(&r, &a, false)
		if !progressed {
			break
		}
	}
	if r.Len() > 0 {
		p.ReasoningSeen = true
	}
	return r.String(), a.String()
}

// Finish flushes what is held at the end of the stream.
func (p *Parser) Finish() (reasoning, answer string) {
	var r, a strings.Builder
	for p.step(&r, &a, true) {
	}
	if r.Len() > 0 {
		p.ReasoningSeen = true
	}
	return r.String(), a.String()
}

// step makes one transition if it can; final means no more input will come.
func (p *Parser) step(r, a *strings.Builder, final bool) bool {
	switch p.state {
	case stStart, stOffStart:
		rest := strings.TrimLeftFunc(p.hold, unicode.IsSpace)
		switch {
		case strings.HasPrefix(rest, thinkOpen):
			p.hold = rest[len(thinkOpen):]
			if p.state == stStart {
				p.state = stReasonLead
			} else {
				p.state = stOffThink
			}
			return true
		case rest == "" || (strings.HasPrefix(thinkOpen, rest) && !final):
			if final { // only whitespace, or a partial tag, at the very end
				if p.state == stStart {
					r.WriteString(strings.TrimSpace(p.hold))
				} else {
					a.WriteString(rest)
				}
				p.hold = ""
			}
			return false
		}
		// No opening tag: thinking on means reasoning starts right away
		// (the template may have opened <think> itself); off means answer.
		p.hold = rest
		if p.state == stStart {
			p.state = stReason
		} else {
			p.state = stAnswer
		}
		return true
	case stReasonLead, stAnswerLead:
		p.hold = strings.TrimLeftFunc(p.hold, unicode.IsSpace)
		if p.hold == "" {
			return false
		}
		if p.state == stReasonLead {
			p.state = stReason
		} else {
			p.state = stAnswer
		}
		return true
	case stReason:
		if i := strings.Index(p.hold, thinkClose); i >= 0 {
			r.WriteString(strings.TrimRightFunc(p.hold[:i], unicode.IsSpace))
			p.hold = p.hold[i+len(thinkClose):]
			p.state = stAnswerLead
			return true
		}
		if final {
			r.WriteString(strings.TrimRightFunc(p.hold, unicode.IsSpace))
			p.hold = ""
			return false
		}
		// Emit all but a possible partial "</think>" and the whitespace
		// before it (trimmed if the tag follows).
		keep := partialSuffix(p.hold, thinkClose)
		body := p.hold[:len(p.hold)-keep]
		emit := strings.TrimRightFunc(body, unicode.IsSpace)
		r.WriteString(emit)
		p.hold = p.hold[len(emit):]
		return false
	case stOffThink:
		if i := strings.Index(p.hold, thinkClose); i >= 0 {
			inner := p.hold[:i]
			p.hold = p.hold[i+len(thinkClose):]
			if strings.TrimSpace(inner) == "" {
				p.state = stAnswerLead // the stray empty block is dropped
			} else {
				a.WriteString(thinkOpen + inner + thinkClose)
				p.state = stAnswer
			}
			return true
		}
		if final {
			a.WriteString(thinkOpen + p.hold)
			p.hold = ""
		}
		return false
	case stAnswer:
		a.WriteString(p.hold)
		p.hold = ""
		return false
	}
	return false
}

// partialSuffix is the length of the longest suffix of s that is a proper
// prefix of tag.
func partialSuffix(s, tag string) int {
	for n := min(len(tag)-1, len(s)); n > 0; n-- {
		if strings.HasSuffix(s, tag[:n]) && utf8.ValidString(s[len(s)-n:]) {
			return n
		}
	}
	return 0
}
