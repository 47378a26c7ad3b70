package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/qwen3-lora/qwen3-server/bench"
	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
)

func runBench(args []string) error {
	fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	model := fs.String("model", "", "GGUF model")
	parallel := fs.String("parallel", "1,4,16,64", "comma-separated concurrency levels")
	promptLen := fs.Int("prompt-len", 512, "prompt tokens per sequence")
	genLen := fs.Int("gen-len", 128, "generated tokens per sequence (end-of-generation ignored)")
	batch := fs.Int("batch-size", 2048, "tokens per decode step (both loops)")
	gpuLayers := fs.Int("gpu-layers", -1, "layers on the GPU (-1 all, 0 CPU)")
	fa := fs.String("flash-attention", "on", "auto, on or off")
	kv := fs.String("kv-cache-type", "f16", "f16, q8_0 or q4_0")
	threads := fs.Int("threads", 0, "CPU threads (0 = all)")
	out := fs.String("out", "", "also write the markdown table to this file")
	verbose := fs.Bool("verbose", false, "show llama.cpp's log")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" {
		return fmt.Errorf("--model is required")
	}
	var levels []int
	for _, p := range strings.Split(*parallel, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return fmt.Errorf("--parallel: bad level %q", p)
		}
		levels = append(levels, n)
	}
	log := zap.NewNop()
	if *verbose {
		log, _ = zap.NewDevelopment()
	}
	routeLlamaLog(log.Named("llama.cpp"))
	llamacpp.Init(libDir(""))
	gpus := llamacpp.GPUs()
	if *gpuLayers != 0 && len(gpus) == 0 {
		return fmt.Errorf("--gpu-layers %d but no GPU backend loaded (make cuda; expected in %s): refusing a silent CPU run", *gpuLayers, libDir(""))
	}
	device := "CPU"
	if len(gpus) > 0 {
		device = gpus[0].Name + " " + gpus[0].Description
	}
	fmt.Fprintf(os.Stderr, "device: %s\n", device)
	m, err := llamacpp.LoadModel(llamacpp.ModelParams{Path: *model, GPULayers: *gpuLayers})
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintf(os.Stderr, "model: %s (%s, %.2f GB)\n", *model, m.Desc(), float64(m.Size())/1e9)
	opts := bench.Options{
		Model: m, Parallel: levels, PromptLen: *promptLen, GenLen: *genLen, BatchSize: *batch,
		FlashAttn: *fa, KVCacheType: *kv, Threads: *threads,
		// The thinking-mode preset: what a default Qwen3 request samples with.
		Sampling: engine.Sampling{Temperature: 0.6, TopP: 0.95, TopK: 20},
	}
	lctx, err := llamacpp.NewContext(m, bench.ContextParams(opts))
	if err != nil {
		return err
	}
	defer lctx.Close()
	opts.Context = lctx
	rows, err := bench.Run(opts, log, os.Stderr)
	table := bench.Markdown(rows)
	header := fmt.Sprintf("device: %s; model: %s; prompt %d, generated %d tokens; batch %d; flash attention %s; KV %s\n\n", device, m.Desc(), *promptLen, *genLen, *batch, *fa, *kv)
	fmt.Print(header + table)
	if *out != "" {
		if werr := os.WriteFile(*out, []byte(header+table), 0o644); werr != nil {
			return werr
		}
	}
	return err
}
