package server

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
)

// Chat logprobs through the official Go SDK on the chain model: every
// generated token (reasoning and tags included, not <|im_end|>), streamed
// and not, the same entries either way.
func TestLogprobsGoSDKChat(t *testing.T) {
	client, _ := sdkClient(t, chainServer(t))
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{Model: "tiny-chain", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
		Logprobs: openai.Bool(true), TopLogprobs: openai.Int(3)}
	resp, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	content := resp.Choices[0].Logprobs.Content
	var text strings.Builder
	for _, c := range content {
		text.WriteString(c.Token)
		if string(int64sToBytes(c.Bytes)) != c.Token || len(c.TopLogprobs) != 3 {
			t.Fatalf("entry %+v", c)
		}
		// The chain model is deterministic because its logits are peaked:
		// each chosen token is the best one, with probability near 1.
		if c.TopLogprobs[0].Token != c.Token || c.TopLogprobs[0].Logprob != c.Logprob || c.Logprob < -1e-3 || c.TopLogprobs[1].Logprob > c.Logprob {
			t.Errorf("token %q logprob %g, alternatives %+v", c.Token, c.Logprob, c.TopLogprobs)
		}
	}
	t.Logf("chain logprobs: %v", logprobList(content))
	if text.String() != "<think>Let me think.</think>\n\nHello!" || len(content) != int(resp.Usage.CompletionTokens)-1 {
		t.Fatalf("tokens %q (%d of %d completion tokens)", text.String(), len(content), resp.Usage.CompletionTokens)
	}

	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var streamed []openai.ChatCompletionTokenLogprob
	for stream.Next() {
		for _, c := range stream.Current().Choices {
			var lpText strings.Builder
			for _, lp := range c.Logprobs.Content {
				lpText.WriteString(lp.Token)
				streamed = append(streamed, openai.ChatCompletionTokenLogprob{Token: lp.Token, Logprob: lp.Logprob})
			}
			// A chunk's logprobs are those of the tokens whose text it
			// carries (plus tags and whitespace the parser held or dropped).
			for _, d := range []string{c.Delta.Content, c.Delta.JSON.ExtraFields["reasoning_content"].Raw()} {
				if d = strings.Trim(d, `"`); d != "" && d != "null" && !strings.Contains(lpText.String(), d) {
					t.Errorf("delta %q with logprobs of %q", d, lpText.String())
				}
			}
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(streamed) != len(content) {
		t.Fatalf("streamed %d logprobs, not streamed %d", len(streamed), len(content))
	}
	for i := range streamed {
		if streamed[i].Token != content[i].Token || math.Abs(streamed[i].Logprob-content[i].Logprob) > 1e-6 {
			t.Errorf("entry %d: streamed %+v, not %q %g", i, streamed[i], content[i].Token, content[i].Logprob)
		}
	}

	// Without logprobs there are none.
	plain, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "tiny-chain", Messages: params.Messages})
	if err != nil || plain.Choices[0].Logprobs.JSON.Content.Valid() {
		t.Fatalf("logprobs without asking: %v %s", err, plain.Choices[0].RawJSON())
	}
	for body, param := range map[string]string{
		`{"messages":[{"role":"user","content":"x"}],"top_logprobs":2}`:                  "top_logprobs",
		`{"messages":[{"role":"user","content":"x"}],"logprobs":false,"top_logprobs":2}`: "top_logprobs",
		`{"messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":21}`: "top_logprobs",
		`{"messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":-1}`: "top_logprobs",
		`{"messages":[{"role":"user","content":"x"}],"logprobs":"yes"}`:                  "logprobs",
	} {
		if w := post(t, chainServer(t), body); w.Code != 400 || !strings.Contains(w.Body.String(), `"param":"`+param+`"`) {
			t.Errorf("%s: %d %s", body, w.Code, w.Body)
		}
	}
}

func int64sToBytes(v []int64) []byte {
	b := make([]byte, len(v))
	for i, c := range v {
		b[i] = byte(c)
	}
	return b
}

func logprobList(c []openai.ChatCompletionTokenLogprob) []string {
	var out []string
	for _, e := range c {
		out = append(out, fmt.Sprintf("%q=%.3g", e.Token, e.Logprob))
	}
	return out
}

// Completions logprobs through the Go SDK on the random model, greedy: the
// tokens make the text, the chosen token is the best one, echo scores the
// prompt (first token null), max_tokens 0 scores without generating, and
// the stream carries the same entries.
func TestLogprobsGoSDKCompletions(t *testing.T) {
	s, _ := randomServer(t, 2, 256)
	client, _ := sdkClient(t, s)
	ctx := context.Background()
	const prompt = "The capital of France is"
	ask := func(maxTokens int64, echo bool, lp int64) *openai.Completion {
		t.Helper()
		p := openai.CompletionNewParams{Model: "tiny-random", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)},
			MaxTokens: openai.Int(maxTokens), Temperature: openai.Float(0), Echo: openai.Bool(echo)}
		if lp >= 0 {
			p.Logprobs = openai.Int(lp)
		}
		r, err := client.Completions.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := ask(6, false, 2)
	c := r.Choices[0]
	l := c.Logprobs
	if strings.Join(l.Tokens, "") != c.Text || len(l.Tokens) != 6 || len(l.TokenLogprobs) != 6 || len(l.TopLogprobs) != 6 || l.TextOffset[0] != 0 {
		t.Fatalf("logprobs %+v for %q", l, c.Text)
	}
	for i, tok := range l.Tokens {
		best := math.Inf(-1)
		for _, v := range l.TopLogprobs[i] {
			best = math.Max(best, v)
		}
		if n := len(l.TopLogprobs[i]); n < 2 || n > 3 || l.TopLogprobs[i][tok] != l.TokenLogprobs[i] || best != l.TokenLogprobs[i] {
			t.Errorf("token %d %q (%g): top %v", i, tok, l.TokenLogprobs[i], l.TopLogprobs[i])
		}
		if i > 0 && l.TextOffset[i] != l.TextOffset[i-1]+int64(utf8.RuneCountInString(l.Tokens[i-1])) {
			t.Errorf("text offsets %v for %q", l.TextOffset, l.Tokens)
		}
	}

	// Scoring: max_tokens 0 with echo.
	score := ask(0, true, 1)
	sc := score.Choices[0]
	if sc.Text != prompt || strings.Join(sc.Logprobs.Tokens, "") != prompt || sc.FinishReason != "length" || score.Usage.CompletionTokens != 0 || int(score.Usage.PromptTokens) != len(sc.Logprobs.Tokens) {
		t.Fatalf("scoring: %s", score.RawJSON())
	}
	np := len(sc.Logprobs.Tokens)
	if raw := sc.Logprobs.RawJSON(); !strings.Contains(raw, `"token_logprobs":[null,`) || !strings.Contains(raw, `"top_logprobs":[null,`) {
		t.Fatalf("the first prompt token has a logprob: %s", raw)
	}
	// The SDK drops a top_logprobs list with a null in it: read it raw.
	var raw struct {
		TopLogprobs []map[string]float64 `json:"top_logprobs"`
	}
	if err := json.Unmarshal([]byte(sc.Logprobs.RawJSON()), &raw); err != nil || len(raw.TopLogprobs) != np {
		t.Fatalf("top_logprobs: %v %s", err, sc.Logprobs.RawJSON())
	}
	for i, v := range sc.Logprobs.TokenLogprobs[1:] {
		if top := raw.TopLogprobs[i+1]; v >= 0 || len(top) < 1 || len(top) > 2 || top[sc.Logprobs.Tokens[i+1]] != v {
			t.Fatalf("prompt token %d: %g %v", i+1, v, top)
		}
	}

	// echo with generation: the prompt's entries, then the completion's,
	// equal to the scoring above and the plain completion.
	both := ask(6, true, 2).Choices[0]
	if both.Text != prompt+c.Text || strings.Join(both.Logprobs.Tokens, "") != both.Text {
		t.Fatalf("echo: %q, tokens %q", both.Text, both.Logprobs.Tokens)
	}
	for i, v := range both.Logprobs.TokenLogprobs {
		want := l.TokenLogprobs[max(0, i-np)]
		if i < np {
			want = sc.Logprobs.TokenLogprobs[i]
		}
		if math.Abs(v-want) > 1e-4 {
			t.Errorf("echo entry %d: %g, want %g", i, v, want)
		}
	}
	if off := both.Logprobs.TextOffset[np]; off != int64(utf8.RuneCountInString(prompt)) {
		t.Errorf("the completion starts at offset %d, prompt has %d characters", off, utf8.RuneCountInString(prompt))
	}

	// Streamed with echo: the prompt first, then the same entries.
	stream := client.Completions.NewStreaming(ctx, openai.CompletionNewParams{Model: "tiny-random", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)},
		MaxTokens: openai.Int(6), Temperature: openai.Float(0), Echo: openai.Bool(true), Logprobs: openai.Int(2)})
	var text strings.Builder
	var toks []string
	var offs []int64
	events := 0
	for stream.Next() {
		for _, ch := range stream.Current().Choices {
			if events == 0 && ch.Text != prompt {
				t.Fatalf("first event %q, not the prompt", ch.Text)
			}
			events++
			text.WriteString(ch.Text)
			toks = append(toks, ch.Logprobs.Tokens...)
			offs = append(offs, ch.Logprobs.TextOffset...)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != both.Text || !slices.Equal(toks, both.Logprobs.Tokens) || !slices.Equal(offs, both.Logprobs.TextOffset) {
		t.Fatalf("stream %q %q %v, not %q %q %v", text.String(), toks, offs, both.Text, both.Logprobs.Tokens, both.Logprobs.TextOffset)
	}

	// echo without logprobs only prepends the prompt.
	if e := ask(2, true, -1).Choices[0]; !strings.HasPrefix(e.Text, prompt) || e.Logprobs.JSON.Tokens.Valid() {
		t.Fatalf("echo alone: %s", e.RawJSON())
	}
	for body, param := range map[string]string{
		`{"prompt":"x","logprobs":21}`:   "logprobs",
		`{"prompt":"x","logprobs":-1}`:   "logprobs",
		`{"prompt":"x","max_tokens":0}`:  "max_tokens",
		`{"prompt":"x","logprobs":true}`: "logprobs",
	} {
		if w := do(s, "POST", "/v1/completions", body); w.Code != 400 || !strings.Contains(w.Body.String(), `"param":"`+param+`"`) {
			t.Errorf("%s: %d %s", body, w.Code, w.Body)
		}
	}
}
