package server

import (
	"math"
	"strings"
	"unicode/utf8"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/server/openai"
)

// tokenText is a token's string: its text, with the bytes of a fragment of
// a multi-byte character shown as U+FFFD, as vLLM's detokenizer shows them;
// the raw bytes go in "bytes".
func tokenText(b []byte) string { return strings.ToValidUTF8(string(b), "\uFFFD") }

func byteList(b []byte) []int {
	out := make([]int, len(b))
	for i, c := range b {
		out[i] = int(c)
	}
	return out
}

// wireLogprob clamps to -9999 (as vLLM): JSON has no -Inf for a token whose
// probability underflows.
func wireLogprob(v float32) float64 { return max(float64(v), -9999) }

func topLogprob(e engine.Engine, t engine.TokenLogprob) openai.TopLogprob {
	b := e.TokenBytes(t.Token)
	return openai.TopLogprob{Token: tokenText(b), Logprob: wireLogprob(t.Logprob), Bytes: byteList(b)}
}

// chatLogprobs converts engine logprobs to chat's content entries.
func chatLogprobs(e engine.Engine, lps []engine.Logprob) *openai.ChatLogprobs {
	out := &openai.ChatLogprobs{Content: make([]openai.ChatTokenLogprob, len(lps))}
	for i, lp := range lps {
		c := openai.ChatTokenLogprob{TopLogprob: topLogprob(e, lp.TokenLogprob), TopLogprobs: make([]openai.TopLogprob, len(lp.Top))}
		for k, t := range lp.Top {
			c.TopLogprobs[k] = topLogprob(e, t)
		}
		out.Content[i] = c
	}
	return out
}

// completionLogprobs builds one choice's legacy logprobs; text offsets run
// on across calls (a stream's chunks, or the prompt then the completion).
type completionLogprobs struct {
	e     engine.Engine
	text  []byte // the bytes of the tokens so far
	pos   int    // how far complete characters have been counted
	runes int
}

// add converts lps, appends them to all (when not nil) and returns them.
// The top_logprobs map holds the alternatives plus the token itself, as
// OpenAI's (so logprobs 0 maps just the token).
func (c *completionLogprobs) add(lps []engine.Logprob, all *openai.CompletionLogprobs) *openai.CompletionLogprobs {
	out := &openai.CompletionLogprobs{Tokens: []string{}, TokenLogprobs: []*float64{}, TopLogprobs: []map[string]float64{}, TextOffset: []int{}}
	for _, lp := range lps {
		b := c.e.TokenBytes(lp.Token)
		out.TextOffset = append(out.TextOffset, c.offset())
		c.text = append(c.text, b...)
		out.Tokens = append(out.Tokens, tokenText(b))
		if math.IsNaN(float64(lp.Logprob)) { // the prompt's first token
			out.TokenLogprobs = append(out.TokenLogprobs, nil)
			out.TopLogprobs = append(out.TopLogprobs, nil)
			continue
		}
		v := wireLogprob(lp.Logprob)
		out.TokenLogprobs = append(out.TokenLogprobs, &v)
		top := make(map[string]float64, len(lp.Top)+1)
		for _, t := range append(lp.Top[:len(lp.Top):len(lp.Top)], lp.TokenLogprob) {
			s := tokenText(c.e.TokenBytes(t.Token))
			if _, dup := top[s]; !dup { // two tokens of one string: the better one
				top[s] = wireLogprob(t.Logprob)
			}
		}
		out.TopLogprobs = append(out.TopLogprobs, top)
	}
	if all != nil {
		all.Tokens = append(all.Tokens, out.Tokens...)
		all.TokenLogprobs = append(all.TokenLogprobs, out.TokenLogprobs...)
		all.TopLogprobs = append(all.TopLogprobs, out.TopLogprobs...)
		all.TextOffset = append(all.TextOffset, out.TextOffset...)
	}
	return out
}

// offset is the number of complete characters in the text so far: where
// the next token starts (a token continuing a character starts at it).
func (c *completionLogprobs) offset() int {
	for c.pos < len(c.text) && utf8.FullRune(c.text[c.pos:]) {
		_, n := utf8.DecodeRune(c.text[c.pos:])
		c.pos += n
		c.runes++
	}
	return c.runes
}
