package scheduler

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/qwen3-lora/qwen3-server/adapters"
	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
	"github.com/qwen3-lora/qwen3-server/internal/testutil"
	"github.com/qwen3-lora/qwen3-server/tools/modelgen"
)

func gpusForTest() []llamacpp.Device {
	llamacpp.Init("")
	return llamacpp.GPUs()
}

func TestMain(m *testing.M) {
	// llama.cpp's model-loading chatter would bury the test output.
	llamacpp.SetLogger(func(level int, text string) {
		if level == 4 {
			os.Stderr.WriteString(text)
		}
	})
	// Every engine in this process then computes on the CPU variant that
	// the binary would use (llamacpp.Init runs once per process).
	llamacpp.Init(testutil.LibDir())
	os.Exit(m.Run())
}

// TestGPUAdapterChurnFreesMemory loads and unloads an adapter
// QWEN3_CHURN_N times (default 1,000) while 16 streams decode on the GPU,
// with Close freeing on the GPU: device memory must come
// back to within 64 MiB of where it started, nothing may crash (the engine's
// context and model are freed at the end too), and the longest gap between
// two tokens of a stream is logged (issue 14: loading an adapter must delay
// no stream by more than 50 ms). Skipped without a GPU backend.
func TestGPUAdapterChurnFreesMemory(t *testing.T) {
	if len(gpusForTest()) == 0 {
		t.Skip("no GPU backend loaded")
	}
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("QWEN3_CHURN_N")); err == nil {
		n = v
	}
	root := testutil.RepoRoot(t)
	vocab, err := modelgen.LoadVocab(filepath.Join(root, "testdata", "cache", "tokenizer"), 151936)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	model := filepath.Join(dir, "small.gguf")
	if err := modelgen.Write(model, modelgen.Options{Shape: modelgen.Shapes["small"], Vocab: vocab, Seed: 11}, nil); err != nil {
		t.Fatal(err)
	}
	peft := filepath.Join(dir, "peft")
	p := modelgen.RandomPEFT{Dims: modelgen.Dims{Layers: 8, Hidden: 512, QDim: 512, KVDim: 256, FFN: 1536}, Rank: 16, Alpha: 32, DType: "F16", Seed: 3, Scale: 0.01, Targets: all7}
	if err := p.Write(peft); err != nil {
		t.Fatal(err)
	}
	lora := filepath.Join(dir, "adapter.gguf")
	if _, err := adapters.ConvertPEFT(peft, lora); err != nil {
		t.Fatal(err)
	}
	freeMem := func() int64 { return int64(llamacpp.GPUs()[0].MemFree) }

	e, err := New(Options{ModelPath: model, GPULayers: -1, ContextSize: 256, Parallel: 17, BatchSize: 512, QueueSize: 8, Threads: 2}, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var gapMu sync.Mutex
	var maxGap time.Duration
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				last := time.Now()
				e.Generate(ctx, &engine.Request{Prompt: "stream", IgnoreEOS: true, MaxTokens: 200}, func(engine.Chunk) error {
					now := time.Now()
					gapMu.Lock()
					maxGap = max(maxGap, now.Sub(last))
					gapMu.Unlock()
					last = now
					return nil
				})
			}
		}()
	}
	// One load and use first: the allocator's and the graph's first-use
	// memory is not what the test is about.
	cycle := func(i int) {
		a, err := e.LoadAdapter(lora)
		if err != nil {
			t.Fatalf("load %d: %v", i, err)
		}
		if i%50 == 0 {
			if o := generate(e, context.Background(), withAdapter(greedy("adapted", 2), a, 1)); o.err != nil {
				t.Fatalf("request with adapter %d: %v", i, o.err)
			}
		}
		a.Close()
	}
	cycle(0)
	time.Sleep(500 * time.Millisecond)
	gapMu.Lock()
	maxGap = 0
	gapMu.Unlock()
	before := freeMem()
	start := time.Now()
	for i := 1; i <= n; i++ {
		cycle(i)
	}
	elapsed := time.Since(start)
	after := freeMem()
	gapMu.Lock()
	gap := maxGap
	gapMu.Unlock()
	cancel()
	wg.Wait()
	t.Logf("%d loads+unloads in %v (%v each) during 16 streams; device memory free before %d MiB, after %d MiB (Δ %d MiB); longest gap between two tokens of a stream %v",
		n, elapsed.Round(time.Millisecond), (elapsed / time.Duration(n)).Round(time.Microsecond), before>>20, after>>20, (before-after)>>20, gap.Round(time.Millisecond))
	if before-after > 64<<20 {
		t.Errorf("device memory went down by %d MiB over %d adapter loads and unloads (allowed: 64 MiB)", (before-after)>>20, n)
	}
	// The context and the model are freed too: the crash this test exists
	// for was in llama_free.
	withEngine := freeMem()
	e.Close()
	t.Logf("engine closed: device memory free %d MiB (was %d MiB with the engine)", freeMem()>>20, withEngine>>20)
}
