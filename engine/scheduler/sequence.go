package scheduler

import (
	"context"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
	"github.com/qwen3-lora/qwen3-server/engine/textstream"
)

type slot struct {
	id    int
	cache []int32 // tokens whose KV cells the slot holds, in order
	// cacheKey is the adapter set the cached cells were computed with: KV
	// computed under one adapter set is not reusable under another.
	cacheKey string
	seq      *sequence
}

// sequence is one request as the loop sees it.
type sequence struct {
	ctx context.Context
	req *engine.Request
	// adapterKey and adapters are req.Adapters unwrapped at admission, so
	// the decode loop never meets a handle of another engine.
	adapterKey string
	adapters   []llamacpp.AdapterScale
	prompt     []int32
	sampler    *llamacpp.Sampler
	stream     *textstream.Stream

	pending   []int32 // prompt tokens not yet decoded
	pos       int     // next position to decode
	last      int32   // sampled token to decode next step
	decoding  bool
	logitsRow int
	sampled   int32
	generated int
	maxTokens int

	// thinking budget
	reasoningTokens int
	reasoningDone   bool
	forced          []int32 // tokens to emit instead of sampling

	// logprobs (Request.Logprobs): generated tokens whose bytes have not
	// all come out of stream yet, with the end offset of each in the bytes
	// pushed, and where the first one starts.
	lpHeld  []engine.Logprob
	lpEnds  []int
	lpStart int
	pushed  int
	// promptLP (Request.PromptLogprobs) fills during prefill and goes out
	// with the first chunk.
	promptLP []engine.Logprob

	submitted, first time.Time
	order            uint64 // admission order (Engine.admitted)

	// Output handed to the request goroutine.
	mu     sync.Mutex
	text   strings.Builder
	chunks []engine.Chunk
	done   bool
	err    error
	result engine.Result
	notify chan struct{}
}

func (e *Engine) newSequence(req *engine.Request) (*sequence, error) {
	prompt := req.PromptTokens
	if prompt == nil {
		var err error
		prompt, err = e.model.Tokenize(req.Prompt, false, true)
		if err != nil {
			return nil, engine.InvalidField(engine.FieldPrompt, "cannot tokenize the prompt: %v", err)
		}
	}
	if len(prompt) == 0 {
		return nil, engine.InvalidField(engine.FieldPrompt, "the prompt is empty")
	}
	for _, t := range prompt {
		if t < 0 || int(t) >= e.model.NVocab() {
			return nil, engine.InvalidField(engine.FieldPrompt, "token id %d is outside the vocabulary (0..%d)", t, e.model.NVocab()-1)
		}
	}
	if n := e.info.ContextSize; len(prompt) >= n {
		return nil, engine.InvalidField(engine.FieldPrompt, "the prompt has %d tokens but the context holds %d per sequence (leave room for at least one generated token)", len(prompt), n)
	}
	if req.MaxTokens < 0 {
		return nil, engine.InvalidField(engine.FieldMaxTokens, "max_tokens must not be negative")
	}
	if req.TopLogprobs < 0 || req.TopLogprobs > engine.MaxTopLogprobs {
		return nil, engine.InvalidField(engine.FieldTopLogprobs, "top_logprobs must be between 0 and %d", engine.MaxTopLogprobs)
	}
	if len(req.Adapters) > engine.MaxStackedAdapters {
		return nil, engine.InvalidField(engine.FieldAdapters, "%d adapters stacked; at most %d", len(req.Adapters), engine.MaxStackedAdapters)
	}
	adKey, adList, err := adapterKey(req.Adapters)
	if err != nil {
		return nil, err
	}
	grammar, err := composeGrammar(req)
	if err != nil {
		return nil, err
	}
	sp := req.Sampling
	params := llamacpp.SamplerParams{
		Temperature: sp.Temperature, TopK: sp.TopK, TopP: sp.TopP, MinP: sp.MinP,
		RepeatPenalty: sp.RepeatPenalty, PresencePenalty: sp.PresencePenalty, FrequencyPenalty: sp.FrequencyPenalty,
		Grammar: grammar,
	}
	if sp.Seed != nil {
		params.Seed, params.HasSeed = *sp.Seed, true
	}
	sampler, err := llamacpp.NewSampler(e.model, params)
	if err != nil {
		return nil, engine.InvalidField(engine.FieldGrammar, "%v", err)
	}
	if req.Logprobs {
		sampler.SetLogprobs(req.TopLogprobs)
	}
	return &sequence{
		req: req, adapterKey: adKey, adapters: adList, prompt: prompt, sampler: sampler, stream: textstream.New(req.Stop),
		maxTokens: req.MaxTokens, submitted: time.Now(), notify: make(chan struct{}, 1), logitsRow: -1,
	}, nil
}

// budget counts the reasoning tokens (see engine.Request) until the model
// closes the reasoning, and enforces the thinking budget: once it is spent
// it replaces the sampled tokens with the closing sequence. Returns the
// token to use.
func (e *Engine) budget(q *sequence, tok int32) int32 {
	r := q.req
	if len(r.ReasoningEnd) == 0 || (q.reasoningDone && len(q.forced) == 0) {
		return tok
	}
	if q.generated == 0 && tok == r.ReasoningStartToken {
		return tok // the model opens the reasoning: the budget starts after the tag
	}
	if len(q.forced) == 0 {
		switch {
		case tok == r.ReasoningEndToken:
			q.reasoningDone = true
			return tok
		case e.model.IsEOG(tok):
			return tok // not reasoning, and nothing left to close
		case r.ReasoningBudget >= 0 && q.reasoningTokens >= r.ReasoningBudget:
			// Spent, and the model would reason on: close it instead.
			q.forced = append([]int32(nil), r.ReasoningEnd...)
			q.reasoningDone = true
			q.result.ReasoningForced = true
		default:
			q.reasoningTokens++
			return tok
		}
	}
	tok, q.forced = q.forced[0], q.forced[1:]
	return tok
}

// accept handles the token just sampled for slot s.
func (e *Engine) accept(s *slot) {
	q := s.seq
	tok := q.sampled
	row := q.logitsRow
	q.logitsRow = -1
	if q.req.PromptOnly {
		e.emit(q, engine.Chunk{Token: -1})
		e.finish(s, engine.FinishLength, nil)
		return
	}
	if tok < 0 {
		e.finish(s, "", engine.Internal("sampler returned no token (grammar dead end?)"))
		return
	}
	tok = e.budget(q, tok)
	q.sampler.Accept(tok)
	q.generated++
	if q.generated == 1 {
		q.first = time.Now()
	}
	if e.model.IsEOG(tok) && !q.req.IgnoreEOS {
		text := q.stream.Flush()
		e.emit(q, engine.Chunk{Token: tok, Text: text, Logprobs: q.releasedLogprobs(false)})
		e.finish(s, engine.FinishStop, nil)
		return
	}
	piece := e.model.TokenPiece(tok)
	if q.req.Logprobs {
		// The token actually placed (the budget may have replaced the
		// sampled one), scored under the position's raw distribution.
		q.lpHeld = append(q.lpHeld, toLogprob(q.sampler.Logprobs(), tok, e.lctx.Logits(row)))
		q.pushed += len(piece)
		q.lpEnds = append(q.lpEnds, q.pushed)
	}
	text, stopped := q.stream.Push(piece)
	if stopped {
		e.emit(q, engine.Chunk{Token: tok, Text: text, Logprobs: q.releasedLogprobs(true)})
		e.finish(s, engine.FinishStop, nil)
		return
	}
	if (q.maxTokens > 0 && q.generated >= q.maxTokens) || q.pos >= e.info.ContextSize {
		text += q.stream.Flush()
		e.emit(q, engine.Chunk{Token: tok, Text: text, Logprobs: q.releasedLogprobs(false)})
		e.finish(s, engine.FinishLength, nil)
		return
	}
	e.emit(q, engine.Chunk{Token: tok, Text: text, Logprobs: q.releasedLogprobs(false)})
	q.last = tok
	q.decoding = true
}

// releasedLogprobs takes the held logprobs of the tokens whose last byte
// the stream has now released. After a stop string (stopped), a token it
// cut is released too and the tokens wholly inside it are dropped.
func (q *sequence) releasedLogprobs(stopped bool) []engine.Logprob {
	if len(q.lpHeld) == 0 {
		return nil
	}
	r := q.stream.Released()
	n := 0
	for n < len(q.lpHeld) && (q.lpEnds[n] <= r || (stopped && q.lpStart < r)) {
		q.lpStart = q.lpEnds[n]
		n++
	}
	out := append([]engine.Logprob(nil), q.lpHeld[:n]...)
	q.lpHeld = append(q.lpHeld[:0], q.lpHeld[n:]...)
	q.lpEnds = append(q.lpEnds[:0], q.lpEnds[n:]...)
	return out
}

func (e *Engine) emit(q *sequence, c engine.Chunk) {
	if q.promptLP != nil { // the first chunk carries the prompt's logprobs
		c.PromptLogprobs, q.promptLP = q.promptLP, nil
	}
	q.mu.Lock()
	q.chunks = append(q.chunks, c)
	q.text.WriteString(c.Text)
	q.mu.Unlock()
	e.toWake = append(e.toWake, q)
}

// finish frees slot s and hands the result to the request goroutine.
func (e *Engine) finish(s *slot, reason string, err error) {
	q := s.seq
	s.seq = nil
	// The sequence id drops the request's adapters before the request
	// completes: once it has, the adapters may be closed (the registry
	// counts uses until then), and llama.cpp must not hold them.
	if len(q.adapters) > 0 {
		if err := e.lctx.SetSeqAdapters(s.id, nil); err != nil {
			e.log.Error("cannot clear a sequence's adapters", zap.Int("slot", s.id), zap.Error(err))
		}
	}
	e.busy.Add(-1)
	if q.req.Priority == engine.PriorityLow {
		e.lowBusy--
	}
	q.sampler.Close()
	now := time.Now()
	q.mu.Lock()
	r := &q.result
	r.FinishReason = reason
	r.Text = q.text.String()
	r.CompletionTokens = q.generated
	r.ReasoningTokens = q.reasoningTokens
	r.Duration = now.Sub(q.submitted)
	if !q.first.IsZero() {
		r.TimeToFirstToken = q.first.Sub(q.submitted)
	}
	q.done, q.err = true, err
	q.mu.Unlock()
	q.wakeUp()
}

func (q *sequence) complete(r engine.Result, err error) {
	q.mu.Lock()
	q.result, q.done, q.err = r, true, err
	q.mu.Unlock()
	q.wakeUp()
}

// wakeUp never blocks the loop: the channel has room for one signal and a
// pending one already covers everything appended since.
func (q *sequence) wakeUp() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}
