package scheduler

import (
	"fmt"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
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
	QueueSize        int    // requests waiting for a slot (low-priority ones apart, as many again)
	LibDir           string // folder with libggml-cuda.so, "" = <exe>/../lib/ollama

	// LowMax caps the PriorityLow sequences in slots at once (batch lines:
	// batch.max_concurrency); 0 = no cap.
	LowMax int

	// KVCacheSize, when > 0, is the total of KV cells, in one cache that all
	// sequences share (llama.cpp's unified KV): it may be less than
	// ContextSize × Parallel, and a decode that finds it full fails only
	// the newest sequence(s) of the step (see stepSlots). 0: ContextSize
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
	if opts.LowMax < 0 {
		opts.LowMax = 0
	}
	return opts
}

// checkOptions reports options no context can run, before a model loads.
func checkOptions(opts Options) error {
	// Every sequence may stack MaxStackedAdapters adapters, and a ubatch
	// mixing sets runs each (token, adapter) pair as one row of a CUDA grid.
	if ub := min(opts.UBatchSize, opts.BatchSize); ub*engine.MaxStackedAdapters > llamacpp.MaxAdapterPairs {
		return fmt.Errorf("ubatch_size %d is too large: at most %d (%d stacked adapters per token must fit the %d rows of the mixed-adapter products)",
			ub, llamacpp.MaxAdapterPairs/engine.MaxStackedAdapters, engine.MaxStackedAdapters, llamacpp.MaxAdapterPairs)
	}
	return nil
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
