package scheduler

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
	"github.com/qwen3-lora/qwen3-server/internal/testutil"
)

// cpuFlags are the instruction-set flags the kernel reports for this CPU.
func cpuFlags(t *testing.T) map[string]bool {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Skip("no /proc/cpuinfo")
	}
	flags := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			for _, f := range strings.Fields(v) {
				flags[f] = true
			}
			break
		}
	}
	return flags
}

// TestMain loaded the variants from lib/ollama (make cpu); ggml must have
// chosen the one that fits this CPU, not the baseline built-in code.
func TestCPUVariantInUse(t *testing.T) {
	variants, _ := filepath.Glob(filepath.Join(testutil.LibDir(), "libggml-cpu-*.so"))
	if len(variants) == 0 {
		t.Fatalf("no CPU backend variants in %s: run `make cpu` (make test does)", testutil.LibDir())
	}
	b := llamacpp.CPUBackendInUse()
	if !strings.HasPrefix(b.Library, "libggml-cpu-") {
		t.Fatalf("CPU backend in use is %q, want a libggml-cpu-*.so variant", b)
	}
	flags := cpuFlags(t)
	for flag, feature := range map[string]string{"avx2": "AVX2", "fma": "FMA", "f16c": "F16C", "avx512f": "AVX512"} {
		if flags[flag] && !slices.Contains(b.Features, feature) {
			t.Errorf("the CPU has %s but the backend in use (%s) lacks %s", flag, b, feature)
		}
	}
	t.Logf("CPU backend: %s", b)
}

// With the variants loaded (one ggml in the process: the binary's, which
// the variants link against), models and contexts are really freed and
// made again, and each new engine still generates the same greedy text.
func TestCloseAndReopenWithVariants(t *testing.T) {
	var first string
	for round := 0; round < 3; round++ {
		e, err := New(Options{ModelPath: testutil.Model(t, "tiny-random.gguf"), LibDir: testutil.LibDir(),
			GPULayers: GPULayersAuto, ContextSize: 128, Parallel: 2}, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		want := 0 // auto: the CPU without a GPU backend, all layers with one
		if len(gpusForTest()) > 0 {
			want = -1
		}
		if got := e.Info().GPULayers; got != want {
			t.Errorf("auto with %d GPUs: gpu_layers %d, want %d", len(gpusForTest()), got, want)
		}
		res, err := e.Generate(context.Background(), &engine.Request{Prompt: "The capital of France is", MaxTokens: 8,
			ReasoningBudget: -1, Sampling: engine.Sampling{Temperature: 0}}, func(engine.Chunk) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			first = res.Text
		} else if res.Text != first {
			t.Errorf("round %d: %q, want %q as in round 0", round, res.Text, first)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		e.Close() // idempotent
	}
}
