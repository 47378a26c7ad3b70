package server

import (
	"math"
	"slices"
	"testing"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/fake"
	"github.com/qwen3-lora/qwen3-server/server/openai"
)

// pieces is an engine whose tokens are the given byte strings.
type pieces struct {
	*fake.Engine
	p [][]byte
}

func (e pieces) TokenBytes(t int32) []byte { return e.p[t] }

// "€" is split over two tokens: each shows U+FFFD and keeps its raw bytes;
// text offsets count characters, a continuation starting at its character.
func TestLogprobsPartialCharacter(t *testing.T) {
	e := pieces{fake.New(), [][]byte{[]byte("a"), {0xe2, 0x82}, {0xac}, []byte("b")}}
	lps := []engine.Logprob{
		{TokenLogprob: engine.TokenLogprob{Token: 0, Logprob: float32(math.NaN())}},
		{TokenLogprob: engine.TokenLogprob{Token: 1, Logprob: -1}, Top: []engine.TokenLogprob{{Token: 3, Logprob: -0.5}}},
		{TokenLogprob: engine.TokenLogprob{Token: 2, Logprob: float32(math.Inf(-1))}},
		{TokenLogprob: engine.TokenLogprob{Token: 3, Logprob: -2}},
	}
	chat := chatLogprobs(e, lps[1:])
	if c := chat.Content[0]; c.Token != "\uFFFD" || !slices.Equal(c.Bytes, []int{0xe2, 0x82}) || c.TopLogprobs[0].Token != "b" || c.TopLogprobs[0].Logprob != -0.5 {
		t.Fatalf("fragment %+v", c)
	}
	if c := chat.Content[1]; c.Token != "\uFFFD" || !slices.Equal(c.Bytes, []int{0xac}) || c.Logprob != -9999 || c.TopLogprobs == nil {
		t.Fatalf("continuation %+v", c)
	}
	b := &completionLogprobs{e: e}
	all := &openai.CompletionLogprobs{}
	first := b.add(lps[:2], all)
	second := b.add(lps[2:], all)
	if first.TokenLogprobs[0] != nil || first.TopLogprobs[0] != nil || *first.TokenLogprobs[1] != -1 {
		t.Fatalf("first %+v", first)
	}
	if got := first.TopLogprobs[1]; len(got) != 2 || got["b"] != -0.5 || got["\uFFFD"] != -1 {
		t.Fatalf("top map %v", got)
	}
	if !slices.Equal(all.TextOffset, []int{0, 1, 1, 2}) || !slices.Equal(second.TextOffset, []int{1, 2}) || len(all.Tokens) != 4 {
		t.Fatalf("offsets %v (second %v)", all.TextOffset, second.TextOffset)
	}
}
