// Package scheduler is the real engine: continuous batching over one
// llama.cpp context. One goroutine owns the context and runs the decode
// loop; every request is a sequence in a slot; each step packs one decode
// token for every generating sequence plus prefill chunks of new prompts
// into a single llama_decode, so new requests join between steps and long
// prompts never stall the others' token stream.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
	"github.com/qwen3-lora/qwen3-server/engine/textstream"
)

// Options configure the engine (see configs.Engine for documentation).
type Options struct {
	ModelPath        string
	ModelID          string // name reported to clients; default: file name
	GPULayers        int    // -1 = all; GPULayersAuto = all with a GPU, else CPU
	AllowCPUFallback bool
	MainGPU          int
	ContextSize      int // KV cells per sequence
	Parallel         int // slots
	BatchSize        int // most tokens per llama_decode
	UBatchSize       int
	FlashAttention   string
	KVCacheType      string
	Threads          int
	QueueSize        int    // requests waiting for a slot
	LibDir           string // folder with libggml-cuda.so, "" = <exe>/../lib/ollama

	// KVCacheSize, when > 0, is the total of KV cells, in one cache that all
	// sequences share (llama.cpp's unified KV): it may be less than
	// ContextSize × Parallel, and a decode that finds it full fails only
	// the newest sequence(s) of the step (see stepGroup). 0: ContextSize
	// cells for each sequence, in its own stream, so it never fills.
	KVCacheSize int
}

// GPULayersAuto asks for every layer on the GPU when a GPU backend loaded,
// and the CPU (with a warning) when none did: what users of Ollama and
// llama-server expect from a plain start.
const GPULayersAuto = -2

// ResolveGPULayers turns GPULayersAuto into -1 (all) when a GPU backend
// loaded and 0 (the CPU) when none did; other counts are returned as they
// are. Call after llamacpp.Init.
func ResolveGPULayers(n int) int {
	if n != GPULayersAuto {
		return n
	}
	if len(llamacpp.GPUs()) > 0 {
		return -1
	}
	return 0
}

// GPUThreads is the llama.cpp thread count used when every layer is on the
// GPU and no count was configured.
const GPUThreads = 2

// Engine implements engine.Engine.
type Engine struct {
	opts  Options
	log   *zap.Logger
	model *llamacpp.Model
	lctx  *llamacpp.Context
	batch *llamacpp.Batch
	info  engine.ModelInfo

	mu      sync.Mutex // guards queue and closed
	queue   []*sequence
	closed  bool
	wake    chan struct{}
	stopped chan struct{}

	ownsModel   bool
	ownsContext bool

	// Loop-owned scratch, reused every step.
	rows   []*slot
	chunks []prefillChunk
	toWake []*sequence
	// sampling scratch
	samplers    []*llamacpp.Sampler
	sampleRows  []*slot
	logitRows   [][]float32
	sampledToks []int32
	profMu      sync.Mutex
	prof        Profile

	activeKey string // adapter set applied to the context
	admitted  uint64 // sequences admitted so far: their order, newest last
	grr       int    // round-robin start over adapter groups

	slots []*slot // owned by the loop goroutine
	busy  atomic.Int32
	rr    int // round-robin start for prefill fairness
}

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

// New loads the model, creates the context and starts the decode loop.
func New(opts Options, log *zap.Logger) (*Engine, error) {
	if log == nil {
		log = zap.NewNop()
	}
	llamacpp.Init(opts.LibDir)
	gpus := llamacpp.GPUs()
	if opts.GPULayers == GPULayersAuto {
		if opts.GPULayers = ResolveGPULayers(opts.GPULayers); opts.GPULayers == 0 {
			log.Warn("no GPU backend loaded: running on the CPU. To use an NVIDIA GPU, build its backend with `make cuda` (it must be in "+libDirForMessage(opts.LibDir)+"); set gpu_layers: 0 to silence this",
				zap.Stringer("cpu_backend", llamacpp.CPUBackendInUse()))
		}
	}
	if opts.GPULayers != 0 && len(gpus) == 0 {
		if !opts.AllowCPUFallback {
			return nil, fmt.Errorf("gpu_layers is %d but no GPU backend loaded (build it with `make cuda`, it must be in %s); set gpu_layers: 0 to run on the CPU, or allow_cpu_fallback: true", opts.GPULayers, libDirForMessage(opts.LibDir))
		}
		log.Warn("no GPU backend loaded: falling back to the CPU; generation will be slow", zap.Int("gpu_layers_requested", opts.GPULayers))
		opts.GPULayers = 0
	}
	if len(gpus) == 0 {
		opts.GPULayers = 0
	}
	if opts.Threads == 0 && opts.GPULayers < 0 {
		// Everything on the GPU: llama.cpp's CPU threads only wait and spin,
		// and 16 of them slowed 64-sequence decoding by 15% on an H200
		// against 2 (BENCHMARKS.md), taking cores from sampling.
		opts.Threads = GPUThreads
	}
	model, err := llamacpp.LoadModel(llamacpp.ModelParams{Path: opts.ModelPath, GPULayers: opts.GPULayers, MainGPU: opts.MainGPU})
	if err != nil {
		return nil, err
	}
	e, err := NewWithModel(model, opts, log)
	if err != nil {
		model.Close()
		return nil, err
	}
	e.ownsModel = true
	return e, nil
}

// NewWithModel starts an engine on a model loaded by the caller, who keeps
// ownership (the bench command reuses one model for several engines).
func NewWithModel(model *llamacpp.Model, opts Options, log *zap.Logger) (*Engine, error) {
	if log == nil {
		log = zap.NewNop()
	}
	opts = withDefaults(opts)
	backend := backendName(opts.MainGPU)
	if arch, _ := model.Meta("general.architecture"); arch != "qwen3" {
		log.Warn("model architecture is not qwen3; the chat template and reasoning parser assume Qwen3", zap.String("architecture", arch))
	}
	ctxSize := opts.ContextSize
	if ctxSize <= 0 {
		ctxSize = min(model.NCtxTrain(), 8192)
	}
	nctx := ctxSize * opts.Parallel
	if opts.KVCacheSize > 0 {
		nctx = opts.KVCacheSize
	}
	lctx, err := llamacpp.NewContext(model, llamacpp.ContextParams{
		NCtx: nctx, NBatch: opts.BatchSize, NUBatch: opts.UBatchSize, KVUnified: opts.KVCacheSize > 0,
		NSeqMax: opts.Parallel, Threads: opts.Threads, FlashAttn: opts.FlashAttention, KVType: opts.KVCacheType,
	})
	if err != nil {
		return nil, err
	}
	e := newEngine(model, lctx, opts, ctxSize, backend, log)
	e.ownsContext = true
	return e, nil
}

// NewWithContext starts an engine on a context created by the caller, who
// keeps ownership of it and of the model. The context must have at least
// opts.Parallel sequences; the engine uses sequence ids 0..Parallel-1 and
// starts by clearing their KV cells. The bench command measures several
// concurrency levels on one context this way.
func NewWithContext(model *llamacpp.Model, lctx *llamacpp.Context, opts Options, log *zap.Logger) *Engine {
	if log == nil {
		log = zap.NewNop()
	}
	opts = withDefaults(opts)
	for i := range opts.Parallel {
		lctx.SeqRm(i, -1, -1)
	}
	ctxSize := opts.ContextSize
	if ctxSize <= 0 || ctxSize > lctx.NCtxSeq() {
		ctxSize = lctx.NCtxSeq()
	}
	return newEngine(model, lctx, opts, ctxSize, backendName(opts.MainGPU), log)
}

func newEngine(model *llamacpp.Model, lctx *llamacpp.Context, opts Options, ctxSize int, backend string, log *zap.Logger) *Engine {
	id := opts.ModelID
	if id == "" {
		id = strings.TrimSuffix(filepath.Base(opts.ModelPath), filepath.Ext(opts.ModelPath))
	}
	e := &Engine{
		opts: opts, log: log, model: model, lctx: lctx,
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
		info: engine.ModelInfo{
			ID: id, Path: opts.ModelPath, Description: model.Desc(), ChatTemplate: model.ChatTemplate(),
			ContextSize: min(ctxSize, lctx.NCtxSeq()), Parallel: opts.Parallel, VocabSize: model.NVocab(),
			Layers: model.NLayer(), SizeBytes: model.Size(), Params: model.NParams(),
			Backend: backend, GPULayers: opts.GPULayers,
		},
	}
	for i := range opts.Parallel {
		e.slots = append(e.slots, &slot{id: i})
	}
	e.batch = llamacpp.NewBatch(opts.BatchSize)
	log.Info("engine ready",
		zap.String("model", id), zap.String("desc", e.info.Description), zap.String("backend", backend),
		zap.Int("gpu_layers", opts.GPULayers), zap.Int("ctx_per_seq", e.info.ContextSize),
		zap.Int("parallel", opts.Parallel), zap.Int("batch", opts.BatchSize), zap.String("kv_type", opts.KVCacheType),
		zap.Stringer("cpu_backend", llamacpp.CPUBackendInUse()))
	go e.loop()
	return e
}

func withDefaults(opts Options) Options {
	if opts.Parallel <= 0 {
		opts.Parallel = 1
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 512
	}
	opts.BatchSize = max(opts.BatchSize, opts.Parallel)
	if opts.UBatchSize <= 0 {
		opts.UBatchSize = opts.BatchSize
	}
	if opts.QueueSize < 0 {
		opts.QueueSize = 0
	}
	return opts
}

// backendName names the device the model runs on, for logs and /v1/models.
func backendName(mainGPU int) string {
	gpus := llamacpp.GPUs()
	if len(gpus) == 0 {
		return "CPU"
	}
	g := gpus[min(max(mainGPU, 0), len(gpus)-1)]
	return fmt.Sprintf("%s (%s, %.1f GiB free)", g.Name, g.Description, float64(g.MemFree)/(1<<30))
}

func libDirForMessage(d string) string {
	if d != "" {
		return d
	}
	return "<binary>/../lib/ollama"
}

// Adapter is a LoRA adapter loaded by this engine.
type Adapter struct{ a *llamacpp.Adapter }

// AdapterFrom wraps an adapter loaded with llamacpp.LoadAdapter on this
// engine's model (the bench command loads adapters once for several engines).
func AdapterFrom(a *llamacpp.Adapter) engine.Adapter { return &Adapter{a: a} }

// Close frees the adapter; the caller makes sure no request uses it.
func (a *Adapter) Close() { a.a.Close() }

// LoadAdapter implements engine.AdapterLoader. Loading does not touch the
// context, so it runs on the caller's goroutine while requests decode.
func (e *Engine) LoadAdapter(path string) (engine.Adapter, error) {
	a, err := llamacpp.LoadAdapter(e.model, path)
	if err != nil {
		return nil, err
	}
	return &Adapter{a: a}, nil
}

// Info implements engine.Engine.
func (e *Engine) Info() engine.ModelInfo { return e.info }

// Stats implements engine.Engine.
func (e *Engine) Stats() engine.Stats {
	e.mu.Lock()
	q := len(e.queue)
	e.mu.Unlock()
	return engine.Stats{Slots: len(e.slots), BusySlots: int(e.busy.Load()), QueueDepth: q, QueueSize: e.opts.QueueSize}
}

// Tokenize implements engine.Engine.
func (e *Engine) Tokenize(text string, parseSpecial bool) ([]int32, error) {
	return e.model.Tokenize(text, false, parseSpecial)
}

// TokenBytes implements engine.Engine.
func (e *Engine) TokenBytes(tok int32) []byte { return e.model.TokenPiece(tok) }

// Detokenize implements engine.Engine.
func (e *Engine) Detokenize(tokens []int32) string {
	var b []byte
	for _, t := range tokens {
		b = append(b, e.model.TokenPiece(t)...)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// Generate implements engine.Engine.
func (e *Engine) Generate(ctx context.Context, req *engine.Request, fn func(engine.Chunk) error) (*engine.Result, error) {
	seq, err := e.newSequence(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the sequence at the next step if we return early
	seq.ctx = ctx

	e.mu.Lock()
	switch {
	case e.closed:
		e.mu.Unlock()
		seq.sampler.Close()
		return nil, engine.ErrClosed
	case len(e.queue) >= e.opts.QueueSize+e.freeSlotsHint():
		e.mu.Unlock()
		seq.sampler.Close()
		return nil, engine.ErrOverloaded
	}
	e.queue = append(e.queue, seq)
	e.mu.Unlock()
	e.signal()

	for {
		select {
		case <-seq.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		seq.mu.Lock()
		chunks := seq.chunks
		seq.chunks = nil
		done, res, serr := seq.done, seq.result, seq.err
		seq.mu.Unlock()
		for _, c := range chunks {
			if err := fn(c); err != nil {
				return nil, err
			}
		}
		if done {
			if serr != nil {
				return nil, serr
			}
			return &res, nil
		}
	}
}

// freeSlotsHint counts slots with no sequence, read without the loop's
// cooperation: admission is re-checked by the loop, so a stale value only
// lets a request wait in the queue a moment.
func (e *Engine) freeSlotsHint() int {
	return len(e.slots) - int(e.busy.Load())
}

// rootRule is the root rule's definition in a grammar from a JSON schema.
var rootRule = regexp.MustCompile(`(?m)^root\s*::=`)

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
	adKey, adList, err := adapterKey(req.Adapters)
	if err != nil {
		return nil, err
	}
	grammar := req.Grammar
	if len(req.JSONSchema) > 0 {
		g := llamacpp.SchemaToGrammar(req.JSONSchema)
		if g == "" {
			// Composed into a grammar, the schema is part of that grammar.
			field := engine.FieldJSONSchema
			if req.Grammar != "" {
				field = engine.FieldGrammar
			}
			return nil, engine.InvalidField(field, "the JSON schema is invalid or uses features llama.cpp cannot turn into a grammar")
		}
		if req.Grammar == "" {
			grammar = g
		} else {
			grammar = req.Grammar + "\n" + rootRule.ReplaceAllString(g, "json ::=")
		}
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

func (e *Engine) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Close implements engine.Engine. Idempotent.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		<-e.stopped
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.signal()
	<-e.stopped
	e.batch.Close()
	if e.ownsContext {
		e.lctx.Close()
	}
	if e.ownsModel {
		e.model.Close()
	}
	return nil
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
		if e.busy.Load() == 0 {
			<-e.wake
			continue
		}
		e.step()
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
func (e *Engine) admit() {
	for {
		free := e.freeSlots()
		if len(free) == 0 {
			return
		}
		e.mu.Lock()
		if len(e.queue) == 0 {
			e.mu.Unlock()
			return
		}
		seq := e.queue[0]
		e.queue = e.queue[1:]
		e.mu.Unlock()
		if seq.ctx.Err() != nil {
			seq.sampler.Close()
			seq.complete(engine.Result{}, seq.ctx.Err())
			continue
		}
		key := seq.adapterKey
		best, bestLen := free[0], 0
		for _, s := range free {
			n := 0
			if s.cacheKey == key {
				n = commonPrefix(s.cache, seq.prompt)
			}
			if n > bestLen {
				best, bestLen = s, n
			}
		}
		if bestLen == 0 {
			// No cached prefix to reuse: place it beside its adapter group.
			best = e.slots[e.placement(key)]
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
	}
}

// placement applies placement() to the slots' current state.
func (e *Engine) placement(key string) int {
	busy, keys := make([]bool, len(e.slots)), make([]string, len(e.slots))
	for i, s := range e.slots {
		if s.seq != nil {
			busy[i], keys[i] = true, s.cacheKey // a busy slot's cacheKey is its sequence's
		}
	}
	return placement(busy, keys, key)
}

func (e *Engine) freeSlots() []*slot {
	var free []*slot
	for _, s := range e.slots {
		if s.seq == nil {
			free = append(free, s)
		}
	}
	return free
}

func commonPrefix(a, b []int32) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// step runs one decode step for every group of sequences that share an
// adapter set (llama.cpp applies adapters per context, so each group needs
// its own llama_decode), starting from a different group each step so that
// none starves. It wakes the request goroutines only at the end: woken
// earlier, dozens of them would compete with sampling for the CPU.
func (e *Engine) step() {
	defer e.wakeAll()
	groups := e.groups()
	for k := range groups {
		g := groups[(e.grr+k)%len(groups)]
		if g.key != e.activeKey {
			if err := e.lctx.SetAdapters(g.adapters); err != nil {
				for _, s := range g.slots {
					e.finish(s, "", engine.Internal("cannot apply the adapters: %v", err))
				}
				continue
			}
			e.activeKey = g.key
		}
		e.stepGroup(g.slots)
	}
	e.grr++
}

type group struct {
	key      string
	adapters []llamacpp.AdapterScale
	slots    []*slot
}

// groups partitions the busy slots by adapter set, in slot order.
func (e *Engine) groups() []group {
	var out []group
	index := map[string]int{}
	for _, s := range e.slots {
		if s.seq == nil {
			continue
		}
		key, list := s.seq.adapterKey, s.seq.adapters
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, group{key: key, adapters: list})
		}
		out[i].slots = append(out[i].slots, s)
	}
	return out
}

// adapterKey unwraps a request's adapters and names the set; a handle this
// engine did not load is a request error.
func adapterKey(uses []engine.AdapterUse) (string, []llamacpp.AdapterScale, error) {
	if len(uses) == 0 {
		return "", nil, nil
	}
	var b strings.Builder
	list := make([]llamacpp.AdapterScale, 0, len(uses))
	for i, u := range uses {
		a, ok := u.Adapter.(*Adapter)
		if !ok || a == nil || a.a == nil {
			return "", nil, engine.Errorf(engine.KindInvalid, "", "adapter %d is a %T, not an adapter this engine loaded (LoadAdapter or AdapterFrom)", i, u.Adapter)
		}
		fmt.Fprintf(&b, "%p:%g;", a.a, u.Scale)
		list = append(list, llamacpp.AdapterScale{Adapter: a.a, Scale: u.Scale})
	}
	return b.String(), list, nil
}

// stepGroup builds one batch for the given slots (decode tokens first, then
// prefill chunks, round robin so no prompt starves), decodes it and samples.
//
// A shared KV cache (Options.KVCacheSize) may be full. llama.cpp then
// refuses the batch untouched, and the step is retried smaller: first
// without the idle slots' cached prefixes, then without the prefill chunks
// (those prompts wait), then without the newest sequence, failed alone
// with an overloaded error, until the batch fits; the others go on.
func (e *Engine) stepGroup(slots []*slot) {
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
	for i := range slots {
		s := slots[(e.rr+i)%len(slots)]
		q := s.seq
		room := b.Cap() - b.Len()
		if !prefill || q == nil || q.decoding || len(q.pending) == 0 || room == 0 {
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

// decoding reports whether any of slots has a token to decode.
func decoding(slots []*slot) bool {
	for _, s := range slots {
		if s.seq != nil && s.seq.decoding {
			return true
		}
	}
	return false
}

// dropIdleCaches frees the KV cells that slots without a sequence keep for
// prefix reuse; it reports whether there were any.
func (e *Engine) dropIdleCaches() bool {
	freed := false
	for _, s := range e.slots {
		if s.seq == nil && len(s.cache) > 0 {
			e.lctx.SeqRm(s.id, -1, -1)
			s.cache = s.cache[:0]
			freed = true
		}
	}
	return freed
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

// Profile is where the decode loop's time went, cumulatively.
type Profile struct {
	Steps  int
	Launch time.Duration // llama_decode call (synchronous for batches > 1 on CUDA)
	Book   time.Duration // KV book-keeping
	Wait   time.Duration // waiting for the GPU's logits
	Sample time.Duration // sampling (parallel over sequences)
	Accept time.Duration // detokenize, stop strings, hand-off

	// The same for the steps that only decode (no prompt chunk): what a
	// generated token costs, without the prefill's long launches.
	DecodeSteps  int
	DecodeLaunch time.Duration
	DecodeWait   time.Duration
}

// Profile returns the loop's cumulative timings (read it when idle).
func (e *Engine) Profile() Profile {
	e.profMu.Lock()
	defer e.profMu.Unlock()
	return e.prof
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

// wakeAll signals the request goroutines that got output this step.
func (e *Engine) wakeAll() {
	for _, q := range e.toWake {
		q.wakeUp()
	}
	clear(e.toWake)
	e.toWake = e.toWake[:0]
}

// finish frees slot s and hands the result to the request goroutine.
func (e *Engine) finish(s *slot, reason string, err error) {
	q := s.seq
	s.seq = nil
	e.busy.Add(-1)
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

func (e *Engine) failAll(err error) {
	for _, s := range e.slots {
		if s.seq != nil {
			e.finish(s, "", err)
		}
	}
	e.mu.Lock()
	queued := e.queue
	e.queue = nil
	e.mu.Unlock()
	for _, q := range queued {
		q.sampler.Close()
		q.complete(engine.Result{}, err)
	}
}

var _ engine.Engine = (*Engine)(nil)
