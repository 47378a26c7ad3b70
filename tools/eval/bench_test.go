package eval

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/scheduler"
	"github.com/qwen3-lora/qwen3-server/internal/testutil"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkEvalVsDecode compares eval's generation throughput with the
// engine's own at the same number of parallel sequences: the same prompts
// (rendered by the planner), the same token count per answer (end of
// generation ignored on both sides), first straight into engine.Generate
// from as many goroutines as slots, then through Run over two models
// interleaved. The target is eval ≥ 0.9× decode. Not part of
// make test (benchmarks are not run there); the figures are measured on a
// quiet machine, e.g. on a GPU with Qwen3-4B:
//
//	EVAL_BENCH_MODEL=/models/qwen3-4b-q4_k_m.gguf EVAL_BENCH_PARALLEL=64 \
//	EVAL_BENCH_ITEMS=500 EVAL_BENCH_TOKENS=256 \
//	go test ./tools/eval -run '^$' -bench EvalVsDecode -benchtime 1x
//
// EVAL_BENCH_MODEL defaults to the generated tiny model, EVAL_BENCH_ITEMS
// (per model) to 4× the parallelism, EVAL_BENCH_TOKENS to 256.
func BenchmarkEvalVsDecode(b *testing.B) {
	model := os.Getenv("EVAL_BENCH_MODEL")
	if model == "" {
		model = testutil.Model(b, "tiny-random.gguf")
	}
	par := envInt("EVAL_BENCH_PARALLEL", 4)
	items := envInt("EVAL_BENCH_ITEMS", 4*par)
	tokens := envInt("EVAL_BENCH_TOKENS", 256)
	e, err := scheduler.New(scheduler.Options{ModelPath: model, GPULayers: scheduler.GPULayersAuto, LibDir: testutil.LibDir(),
		ContextSize: 128 + tokens, Parallel: par, QueueSize: par, BatchSize: max(512, par)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	var set []*Item
	for i := 0; i < items; i++ {
		set = append(set, &Item{Index: i, Messages: msgs("user", fmt.Sprintf("Question %d: what helps against a headache?", i)), Label: "Rest."})
	}
	req := Request{Sampling: Greedy(), MaxTokens: tokens, IgnoreEOS: true}
	gen := &EngineGenerator{Engine: e, Planner: planner(b), Request: req, Models: map[string]EngineModel{"a": {}, "b": {}}}
	for i := 0; i < b.N; i++ {
		// The engine alone: the planned requests of both models' items.
		var reqs []*engine.Request
		for _, it := range set {
			for range 2 {
				plan, err := gen.Planner.Chat(e, req.chatRequest(it, false), nil)
				if err != nil {
					b.Fatal(err)
				}
				plan.Request.IgnoreEOS = true
				reqs = append(reqs, &plan.Request)
			}
		}
		start := time.Now()
		var mu sync.Mutex
		var wg sync.WaitGroup
		next, decoded := 0, 0
		for w := 0; w < par; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					mu.Lock()
					j := next
					next++
					mu.Unlock()
					if j >= len(reqs) {
						return
					}
					res, err := e.Generate(context.Background(), reqs[j], func(engine.Chunk) error { return nil })
					if err != nil {
						b.Error(err)
						return
					}
					mu.Lock()
					decoded += res.CompletionTokens
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		decodeTPS := float64(decoded) / time.Since(start).Seconds()

		res, err := Run(context.Background(), gen, set, Options{Models: []string{"a", "b"}, OutDir: b.TempDir(), Parallel: par, Thinking: ThinkingOff, Score: ScoreAnswer})
		if err != nil {
			b.Fatal(err)
		}
		evalTokens := 0
		for _, r := range res {
			for _, p := range r.Predictions {
				evalTokens += p.CompletionTokens
			}
		}
		evalTPS := float64(evalTokens) / res[0].RuntimeSec // the generation, not the scoring after it
		b.ReportMetric(decodeTPS, "decode_tok/s")
		b.ReportMetric(evalTPS, "eval_tok/s")
		b.ReportMetric(evalTPS/decodeTPS, "eval/decode")
	}
}
