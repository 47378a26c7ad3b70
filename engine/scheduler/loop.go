package scheduler

import (
	"errors"
	"math"
	"runtime"
	"time"

	"go.uber.org/zap"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
)

func (e *Engine) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// loop is the only goroutine that touches the llama context.
func (e *Engine) loop() {
	defer close(e.stopped)
	for {
		e.mu.Lock()
		closed := e.closed
		e.mu.Unlock()
		if closed {
			e.failAll(engine.ErrClosed)
			return
		}
		e.reap()
		e.admit()
		e.publish()
		if e.busy.Load() == 0 {
			<-e.wake
			continue
		}
		e.step()
		e.publish()
	}
}

// reap ends sequences whose request was cancelled: their slot and KV cells
// are freed at once.
func (e *Engine) reap() {
	for _, s := range e.slots {
		if s.seq != nil && s.seq.ctx.Err() != nil {
			e.lctx.SeqRm(s.id, -1, -1)
			s.cache = s.cache[:0]
			e.finish(s, "", s.seq.ctx.Err())
		}
	}
}

// admit moves queued requests into free slots, choosing for each the free
// slot whose cached tokens share the longest prefix with its prompt.
// Interactive requests go first, in arrival order; a low-priority one
// (a batch line) only when no interactive request waits and fewer than
// Options.LowMax low-priority ones are in slots. An interactive request
// that finds every slot busy takes one from a low-priority sequence
// (preempt): batch lines only ever use slots interactive requests leave.
func (e *Engine) admit() {
	for {
		free := e.freeSlots()
		if len(free) == 0 {
			if !e.preempt() {
				return
			}
			continue
		}
		e.mu.Lock()
		seq := e.dequeue()
		e.mu.Unlock()
		if seq == nil {
			return
		}
		if seq.ctx.Err() != nil {
			seq.sampler.Close()
			seq.complete(engine.Result{}, seq.ctx.Err())
			continue
		}
		key := seq.adapterKey
		best, bestLen := e.chooseSlot(free, key, seq.prompt)
		// The slot's sequence id runs with the request's adapters from its
		// next decode on (and with none once it ends: finish).
		if err := e.lctx.SetSeqAdapters(best.id, seq.adapters); err != nil {
			seq.sampler.Close()
			seq.complete(engine.Result{}, engine.Internal("cannot apply the adapters: %v", err))
			continue
		}
		best.cacheKey = key
		// At least the last prompt token is decoded again: its logits are
		// needed to sample the first generated token. Prompt logprobs need
		// every position's logits, which cached cells do not have.
		reuse := min(bestLen, len(seq.prompt)-1)
		if seq.req.PromptLogprobs {
			reuse = 0
			seq.promptLP = []engine.Logprob{{TokenLogprob: engine.TokenLogprob{Token: seq.prompt[0], Logprob: float32(math.NaN())}}}
		}
		if !e.lctx.SeqRm(best.id, reuse, -1) {
			e.lctx.SeqRm(best.id, -1, -1)
			reuse = 0
		}
		best.cache = best.cache[:reuse]
		seq.pending = seq.prompt[reuse:]
		seq.pos = reuse
		seq.result.CachedTokens = reuse
		seq.result.PromptTokens = len(seq.prompt)
		e.admitted++
		seq.order = e.admitted
		best.seq = seq
		e.busy.Add(1)
		if seq.req.Priority == engine.PriorityLow {
			e.lowBusy++
		}
	}
}

// preempt frees a slot for a waiting interactive request by ending the
// low-priority sequence that has generated least (the least work lost)
// with ErrPreempted; its cached cells stay for the prefix cache. It
// reports whether it freed one.
func (e *Engine) preempt() bool {
	e.mu.Lock()
	waiting := len(e.queue) > e.queuedLow
	e.mu.Unlock()
	if !waiting || e.lowBusy == 0 {
		return false
	}
	var victim *slot
	for _, s := range e.slots {
		if s.seq != nil && s.seq.req.Priority == engine.PriorityLow && (victim == nil || s.seq.generated < victim.seq.generated) {
			victim = s
		}
	}
	if victim == nil {
		return false
	}
	e.log.Debug("preempting a low-priority sequence for an interactive request", zap.Int("slot", victim.id), zap.Int("generated", victim.seq.generated))
	e.finish(victim, "", engine.ErrPreempted)
	// Woken now: the loop may find nothing to step (the interactive
	// request was cancelled meanwhile) and wait without waking it.
	e.wakeAll()
	return true
}

// dequeue takes the next sequence to admit off the queue, nil when none
// may be admitted now; e.mu held. A cancelled low-priority sequence is
// taken even over the cap, so that admit can end it.
func (e *Engine) dequeue() *sequence {
	pick := -1
	for i, q := range e.queue {
		if q.req.Priority != engine.PriorityLow {
			pick = i
			break
		}
		if pick < 0 && (e.opts.LowMax == 0 || e.lowBusy < e.opts.LowMax || q.ctx.Err() != nil) {
			pick = i
		}
	}
	if pick < 0 {
		return nil
	}
	seq := e.queue[pick]
	e.queue = append(e.queue[:pick], e.queue[pick+1:]...)
	if seq.req.Priority == engine.PriorityLow {
		e.queuedLow--
	}
	return seq
}

// step runs one decode step for every busy slot: one batch, one
// llama_decode, whatever adapters the sequences use (each slot's set is
// given to llama.cpp at admission: SetSeqAdapters). It wakes the request
// goroutines only at the end: woken earlier, dozens of them would compete
// with sampling for the CPU.
//
// There is no per-adapter-set decode loop any more: with the model on a
// GPU it used to step the slots one adapter set at a time, and each of
// those decodes read all the base weights again (16 streams on an H200:
// 4 adapters x 4 streams 156 tok/s that way, 1,304 in one decode;
// BENCHMARKS.md, issue 14).
func (e *Engine) step() {
	defer e.wakeAll()
	e.stepSlots(e.slots)
}

// stepSlots builds one batch for the given slots (decode tokens first, then
// prefill chunks, round robin so no prompt starves), decodes it and samples.
//
// A shared KV cache (Options.KVCacheSize) may be full. llama.cpp then
// refuses the batch untouched, and the step is retried smaller: first
// without the idle slots' cached prefixes, then without the prefill chunks
// (those prompts wait), then without the newest sequence, failed alone
// with an overloaded error, until the batch fits; the others go on.
func (e *Engine) stepSlots(slots []*slot) {
	b := e.batch
	defer func() { e.rr++ }() // the next step's prefill starts from the next slot
	prefill := true
	var rows []*slot
	var chunks []prefillChunk
	var t0, t1 time.Time
	for {
		rows, chunks = e.buildBatch(slots, prefill)
		if b.Len() == 0 {
			return
		}
		t0 = time.Now()
		err := e.lctx.Decode(b)
		t1 = time.Now()
		if err == nil {
			break
		}
		if !errors.Is(err, llamacpp.ErrNoKVSlot) {
			e.log.Error("decode failed", zap.Error(err), zap.Int("batch", b.Len()))
			for _, s := range slots {
				if s.seq != nil {
					e.lctx.SeqRm(s.id, -1, -1)
					s.cache = s.cache[:0]
					e.finish(s, "", engine.Internal("decode failed: %v", err))
				}
			}
			return
		}
		switch {
		case e.dropIdleCaches():
		case prefill && len(chunks) > 0 && decoding(slots):
			prefill = false
		default:
			prefill = true
			e.failNewest(slots, b.Len())
		}
	}
	// Book-keeping of what is now in the KV cache.
	for _, s := range rows {
		if s.seq.decoding {
			s.cache = append(s.cache, s.seq.last)
			s.seq.pos++
		}
	}
	for _, c := range chunks {
		q := c.s.seq
		c.s.cache = append(c.s.cache, q.pending[:c.n]...)
		q.pos += c.n
		q.pending = q.pending[c.n:]
	}
	t2 := time.Now()
	if len(rows) > 0 {
		e.lctx.Logits(rows[0].seq.logitsRow) // waits for the GPU
	}
	for _, c := range chunks {
		if c.s.seq.req.PromptLogprobs {
			e.promptLogprobs(c)
		}
	}
	t3 := time.Now()
	e.sample(rows)
	t4 := time.Now()
	for _, s := range rows {
		e.accept(s)
	}
	t5 := time.Now()
	e.profMu.Lock()
	p := &e.prof
	p.Steps++
	p.Launch += t1.Sub(t0)
	p.Book += t2.Sub(t1)
	p.Wait += t3.Sub(t2)
	p.Sample += t4.Sub(t3)
	p.Accept += t5.Sub(t4)
	if len(chunks) == 0 {
		p.DecodeSteps++
		p.DecodeLaunch += t1.Sub(t0)
		p.DecodeWait += t3.Sub(t2)
	}
	e.profMu.Unlock()
}

type prefillChunk struct {
	s          *slot
	n          int
	first, pos int // batch row and position of its first token
}

// promptLogprobs scores the prompt tokens that chunk c's rows predict: the
// logits at position p give the logprob of prompt token p+1 (so a chunk's
// last row scores the next chunk's first token, and the prompt's last row
// the first generated token, which accept reports).
func (e *Engine) promptLogprobs(c prefillChunk) {
	q := c.s.seq
	n := min(c.n, len(q.prompt)-1-c.pos)
	if n <= 0 {
		return
	}
	rows := make([][]float32, n)
	for k := range rows {
		rows[k] = e.lctx.Logits(c.first + k)
	}
	for k, lp := range llamacpp.LogprobsMany(rows, q.req.TopLogprobs, e.model.NVocab(), runtime.NumCPU()) {
		q.promptLP = append(q.promptLP, toLogprob(lp, q.prompt[c.pos+k+1], rows[k]))
	}
}

// toLogprob is tok's logprob and the alternatives from a row's summary.
func toLogprob(lp llamacpp.Logprobs, tok int32, logits []float32) engine.Logprob {
	out := engine.Logprob{TokenLogprob: engine.TokenLogprob{Token: tok, Logprob: logits[tok] - lp.LSE}, Top: make([]engine.TokenLogprob, len(lp.IDs))}
	for i, id := range lp.IDs {
		out.Top[i] = engine.TokenLogprob{Token: id, Logprob: lp.Values[i]}
	}
	return out
}

// buildBatch fills e.batch for the given slots: decode tokens first, then,
// with prefill, chunks of pending prompts round robin from e.rr so that no
// prompt starves. It returns the slots whose logits the batch asks for and
// the chunks it took.
func (e *Engine) buildBatch(slots []*slot, prefill bool) ([]*slot, []prefillChunk) {
	b := e.batch
	b.Clear()
	rows := e.rows[:0]
	for _, s := range slots {
		if q := s.seq; q != nil && q.decoding {
			q.logitsRow = b.Len()
			b.Add(q.last, q.pos, s.id, true)
			rows = append(rows, s)
		}
	}
	chunks := e.chunks[:0]
	// While an interactive prompt waits to be prefilled, batch lines'
	// prompts wait a step: a step's cost grows with its prefill tokens, and
	// a batch line's prompt in the same step would delay the interactive
	// request's first token by as much again. Their decode tokens stay (one
	// row each, next to nothing against a prompt).
	lowWaits := e.interactivePrefill()
	for i := range slots {
		s := slots[(e.rr+i)%len(slots)]
		q := s.seq
		room := b.Cap() - b.Len()
		if !prefill || q == nil || q.decoding || len(q.pending) == 0 || room == 0 {
			continue
		}
		if lowWaits && q.req.Priority == engine.PriorityLow {
			continue
		}
		n := min(len(q.pending), room)
		first := b.Len()
		for k := 0; k < n; k++ {
			last := k == n-1 && n == len(q.pending)
			b.Add(q.pending[k], q.pos+k, s.id, last || q.req.PromptLogprobs)
			if last {
				q.logitsRow = b.Len() - 1
				rows = append(rows, s)
			}
		}
		chunks = append(chunks, prefillChunk{s, n, first, q.pos})
	}
	e.rows, e.chunks = rows, chunks
	return rows, chunks
}

// interactivePrefill reports whether an interactive sequence in any slot
// (of any adapter group) still has prompt tokens to decode.
func (e *Engine) interactivePrefill() bool {
	for _, s := range e.slots {
		if q := s.seq; q != nil && !q.decoding && len(q.pending) > 0 && q.req.Priority != engine.PriorityLow {
			return true
		}
	}
	return false
}

// decoding reports whether any of slots has a token to decode.
func decoding(slots []*slot) bool {
	for _, s := range slots {
		if s.seq != nil && s.seq.decoding {
			return true
		}
	}
	return false
}

// failNewest ends the most recently admitted sequence among slots with an
// overloaded error and frees its KV cells: the shared cache cannot hold
// everyone's next tokens.
func (e *Engine) failNewest(slots []*slot, batch int) {
	var newest *slot
	for _, s := range slots {
		if s.seq != nil && (newest == nil || s.seq.order > newest.seq.order) {
			newest = s
		}
	}
	if newest == nil {
		return
	}
	e.log.Warn("KV cache full: failing the newest sequence", zap.Int("slot", newest.id), zap.Int("batch", batch), zap.Int("kv_cells", e.lctx.NCtx()))
	e.lctx.SeqRm(newest.id, -1, -1)
	newest.cache = newest.cache[:0]
	e.finish(newest, "", engine.Errorf(engine.KindOverloaded, "", "the KV cache (%d cells shared by all requests) is full: this request was stopped so that the others can go on; retry later", e.lctx.NCtx()))
}

// sample draws the next token of every row; several rows are sampled in
// parallel on llamacpp's C thread pool (the samplers are independent and
// the logits read-only).
func (e *Engine) sample(rows []*slot) {
	if len(rows) == 1 {
		if q := rows[0].seq; !q.req.PromptOnly {
			q.sampled = q.sampler.Sample(e.lctx.Logits(q.logitsRow))
		}
		return
	}
	e.samplers, e.logitRows, e.sampleRows = e.samplers[:0], e.logitRows[:0], e.sampleRows[:0]
	for _, s := range rows {
		if s.seq.req.PromptOnly { // nothing to generate
			continue
		}
		e.sampleRows = append(e.sampleRows, s)
		e.samplers = append(e.samplers, s.seq.sampler)
		e.logitRows = append(e.logitRows, e.lctx.Logits(s.seq.logitsRow))
	}
	if cap(e.sampledToks) < len(e.samplers) {
		e.sampledToks = make([]int32, len(e.samplers))
	}
	out := e.sampledToks[:len(e.samplers)]
	llamacpp.SampleMany(e.samplers, e.logitRows, out, runtime.NumCPU())
	for i, s := range e.sampleRows {
		s.seq.sampled = out[i]
	}
}

// wakeAll signals the request goroutines that got output this step.
func (e *Engine) wakeAll() {
	for _, q := range e.toWake {
		q.wakeUp()
	}
	clear(e.toWake)
	e.toWake = e.toWake[:0]
}

func (e *Engine) failAll(err error) {
	for _, s := range e.slots {
		if s.seq != nil {
			e.finish(s, "", err)
		}
	}
	e.mu.Lock()
	queued := e.queue
	e.queue, e.queuedLow = nil, 0
	e.mu.Unlock()
	for _, q := range queued {
		q.sampler.Close()
		q.complete(engine.Result{}, err)
	}
}
