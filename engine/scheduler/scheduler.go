// Package scheduler is the real engine: continuous batching over one
// llama.cpp context. One goroutine owns the context and runs the decode
// loop; every request is a sequence in a slot; each step packs one decode
// token for every generating sequence plus prefill chunks of new prompts
// into a single llama_decode, so new requests join between steps and long
// prompts never stall the others' token stream.
//
// Files by responsibility: options.go (configuration), scheduler.go (the
// Engine and its public methods), sequence.go (a request's life as a
// sequence: admission checks, thinking budget, output), grammar.go,
// adapters.go (adapter handles, unwrapped at admission and given to the
// slot's sequence id: llamacpp.Context.SetSeqAdapters), prefixcache.go
// (which slot a request takes, KV prefix reuse), loop.go (the decode loop:
// batching, decode, sampling), profile.go. Only engine/llamacpp touches C.
package scheduler

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
)

// Engine implements engine.Engine.
type Engine struct {
	opts  Options
	log   *zap.Logger
	model *llamacpp.Model
	lctx  *llamacpp.Context
	batch *llamacpp.Batch
	info  engine.ModelInfo

	mu    sync.Mutex // guards queue, queuedLow and closed
	queue []*sequence
	// queuedLow counts the PriorityLow sequences in queue: the two classes
	// have separate room (QueueSize each), so that batch lines cannot make
	// the queue full for interactive requests.
	queuedLow int
	// lowBusy counts the PriorityLow sequences in slots (loop-owned).
	lowBusy int
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

	admitted uint64 // sequences admitted so far: their order, newest last

	slots []*slot // owned by the loop goroutine
	busy  atomic.Int32
	rr    int // round-robin start for prefill fairness

	// What the loop publishes about its slots for Stats (publish).
	kvCells   int
	statsMu   sync.Mutex
	kvUsed    int
	running   []engine.Adapter
	published bool // the last publish saw adapters, or KV cells in use
}

// New loads the model, creates the context and starts the decode loop.
func New(opts Options, log *zap.Logger) (*Engine, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := checkOptions(withDefaults(opts)); err != nil {
		return nil, err
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
	if err := checkOptions(opts); err != nil {
		return nil, err
	}
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
	e.kvCells = lctx.NCtx()
	e.batch = llamacpp.NewBatch(opts.BatchSize)
	log.Info("engine ready",
		zap.String("model", id), zap.String("desc", e.info.Description), zap.String("backend", backend),
		zap.Int("gpu_layers", opts.GPULayers), zap.Int("ctx_per_seq", e.info.ContextSize),
		zap.Int("parallel", opts.Parallel), zap.Int("batch", opts.BatchSize), zap.String("kv_type", opts.KVCacheType),
		zap.Stringer("cpu_backend", llamacpp.CPUBackendInUse()))
	go e.loop()
	return e
}

// Info implements engine.Engine.
func (e *Engine) Info() engine.ModelInfo { return e.info }

// Stats implements engine.Engine.
func (e *Engine) Stats() engine.Stats {
	st := engine.Stats{Slots: len(e.slots), BusySlots: int(e.busy.Load()), QueueSize: e.opts.QueueSize, KVCells: e.kvCells}
	e.mu.Lock()
	st.QueueDepth = len(e.queue)
	for _, q := range e.queue {
		st.WaitingAdapters = engine.AddAdapters(st.WaitingAdapters, q.req.Adapters)
	}
	e.mu.Unlock()
	e.statsMu.Lock()
	st.KVCellsUsed = e.kvUsed
	st.RunningAdapters = append([]engine.Adapter(nil), e.running...)
	e.statsMu.Unlock()
	return st
}

// publish records, for Stats, the KV cells the running sequences hold and
// their adapters. The cells are counted from the slots' token lists, not
// asked of llama.cpp: the loop keeps s.cache equal to the cells of the
// slot's sequence (every decode appends, every SeqRm trims it), so the
// count is exact and costs no cgo call per step; and only the scheduler
// knows which cells belong to a running sequence and which an idle slot
// merely keeps for prefix reuse. Called by the loop goroutine after every
// change of the slots.
func (e *Engine) publish() {
	used := 0
	var running []engine.Adapter
	for _, s := range e.slots {
		if s.seq != nil {
			used += len(s.cache)
			running = engine.AddAdapters(running, s.seq.req.Adapters)
		}
	}
	if used == 0 && running == nil && !e.published {
		return // idle, and already published as such
	}
	e.statsMu.Lock()
	e.kvUsed, e.running = used, running
	e.statsMu.Unlock()
	e.published = used > 0 || running != nil
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
	case e.queuedOf(req.Priority) >= e.opts.QueueSize+e.freeSlotsHint():
		e.mu.Unlock()
		seq.sampler.Close()
		return nil, engine.ErrOverloaded
	}
	e.queue = append(e.queue, seq)
	if req.Priority == engine.PriorityLow {
		e.queuedLow++
	}
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

// queuedOf counts the queued sequences of priority p's class; e.mu held.
func (e *Engine) queuedOf(p engine.Priority) int {
	if p == engine.PriorityLow {
		return e.queuedLow
	}
	return len(e.queue) - e.queuedLow
}

// freeSlotsHint counts slots with no sequence, read without the loop's
// cooperation: admission is re-checked by the loop, so a stale value only
// lets a request wait in the queue a moment.
func (e *Engine) freeSlotsHint() int {
	return len(e.slots) - int(e.busy.Load())
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

var _ engine.Engine = (*Engine)(nil)
