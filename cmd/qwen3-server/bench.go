package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/qwen3-lora/qwen3-server/adapters"
	batchpkg "github.com/qwen3-lora/qwen3-server/batch"
	"github.com/qwen3-lora/qwen3-server/configs"
	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
	"github.com/qwen3-lora/qwen3-server/engine/scheduler"
	"github.com/qwen3-lora/qwen3-server/sampling"
	"github.com/qwen3-lora/qwen3-server/server"
	"github.com/qwen3-lora/qwen3-server/tools/bench"
	"github.com/qwen3-lora/qwen3-server/tools/modelgen"
)

func runBench(args []string) error {
	fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	model := fs.String("model", "", "GGUF model")
	parallel := fs.String("parallel", "1,4,16,64", "comma-separated concurrency levels")
	promptLen := fs.Int("prompt-len", 512, "prompt tokens per sequence")
	genLen := fs.Int("gen-len", 128, "generated tokens per sequence (end-of-generation ignored)")
	batch := fs.Int("batch-size", 2048, "tokens per decode step (both loops)")
	gpuLayers := fs.Int("gpu-layers", scheduler.GPULayersAuto, "layers on the GPU (-1 all, 0 CPU; default: all when a GPU backend loaded, else the CPU)")
	fa := fs.String("flash-attention", "on", "auto, on or off")
	kv := fs.String("kv-cache-type", "f16", "f16, q8_0 or q4_0")
	threads := fs.Int("threads", 0, "llama.cpp CPU threads (0 = the server's default: 2 with every layer on the GPU, else automatic: all cores below 8, three quarters with a thread pool from 8)")
	out := fs.String("out", "", "also write the markdown table to this file")
	verbose := fs.Bool("verbose", false, "show llama.cpp's log")
	noMmap := fs.Bool("no-mmap", false, "read the weights into memory instead of mapping the file")
	httpMode := fs.Bool("http", false, "measure through the HTTP server (N streaming clients) instead of the in-process scheduler")
	peerURL := fs.String("peer-url", "", "with --http: also measure this OpenAI-compatible server (e.g. http://127.0.0.1:11434/v1 for Ollama)")
	peerModel := fs.String("peer-model", "", "model name on the peer server")
	peerName := fs.String("peer-name", "peer", "name of the peer in the table")
	nAdapters := fs.Int("adapters", 0, "measure LoRA adapters instead: this many random rank-16 adapters on all seven projections")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the whole run to this file (go tool pprof)")
	adapterLevels := fs.String("adapter-levels", "1,16", "with --adapters: sequence counts to compare adapter and base at (16 adds the table at 16 streams: base, 1 adapter, 4x4, 16x1, 8 base + 8 adapted)")
	mixRows := fs.String("mix-rows", "", "with --adapters: only these rows of the adapter table, at each --adapter-levels count, without the base-vs-adapter comparison (comma-separated: "+strings.Join(bench.MixRowKeys, ",")+"; e.g. to profile one row)")
	adapterDType := fs.String("adapter-dtype", "BF16", "with --adapters: the PEFT weights' type (BF16 converts to an F32 GGUF, F16 stays F16)")
	batchMode := fs.Bool("batch", false, "measure the Batch API instead: interactive TTFT idle vs while a large batch runs, and batch-line throughput vs plain requests (slots: the largest --parallel level)")
	batchLines := fs.Int("batch-lines", 512, "with --batch: lines of the large batch (the throughput runs use a quarter)")
	batchConc := fs.Int("batch-concurrency", batchpkg.DefaultConfig().MaxConcurrency, "with --batch: batch.max_concurrency, and the plain clients compared with it")
	interactive := fs.Int("interactive", 4, "with --batch: concurrent interactive clients in the TTFT runs")
	rounds := fs.Int("rounds", 1, "with --http: measure every level this many times, alternated; on the CPU each round measures the memory floor again first, and the table gives one stream's HTTP rate over its own round's floor")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" {
		return fmt.Errorf("--model is required")
	}
	if *rounds < 1 {
		return fmt.Errorf("--rounds must be at least 1")
	}
	var mixOnly []string // --mix-rows, checked before the model loads
	if *mixRows != "" {
		for _, k := range strings.Split(*mixRows, ",") {
			if k = strings.TrimSpace(k); !slices.Contains(bench.MixRowKeys, k) {
				return fmt.Errorf("--mix-rows: unknown row %q (want some of %s)", k, strings.Join(bench.MixRowKeys, ","))
			}
			mixOnly = append(mixOnly, k)
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	levels, err := parseLevels("--parallel", *parallel)
	if err != nil {
		return err
	}
	log := zap.NewNop()
	if *verbose {
		log, _ = zap.NewDevelopment()
	}
	routeLlamaLog(log.Named("llama.cpp"))
	llamacpp.Init(libDir(""))
	gpus := llamacpp.GPUs()
	*gpuLayers = scheduler.ResolveGPULayers(*gpuLayers)
	if *gpuLayers != 0 && len(gpus) == 0 {
		return fmt.Errorf("--gpu-layers %d but no GPU backend loaded (make cuda; expected in %s): refusing a silent CPU run", *gpuLayers, libDir(""))
	}
	device := "CPU " + cpuModel() + ", " + llamacpp.CPUBackendInUse().String()
	if len(gpus) > 0 {
		device = gpus[0].Name + " " + gpus[0].Description
	}
	fmt.Fprintf(os.Stderr, "device: %s (GOMAXPROCS %d, %d CPUs)\n", device, runtime.GOMAXPROCS(0), runtime.NumCPU())
	if *threads == 0 && *gpuLayers < 0 && len(gpus) > 0 {
		*threads = scheduler.GPUThreads
	}
	m, err := llamacpp.LoadModel(llamacpp.ModelParams{Path: *model, GPULayers: *gpuLayers, NoMmap: *noMmap})
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintf(os.Stderr, "model: %s (%s, %.2f GB)\n", *model, m.Desc(), float64(m.Size())/1e9)
	var floor func() float64 // tok/s, measured anew at each call; nil on the GPU
	if *gpuLayers == 0 {
		// On the CPU one sequence's decoding is bound by memory bandwidth:
		// say what the bound is on this machine, measured now, beside the
		// figures it bounds.
		f, desc, err := memoryFloor(*model, *threads)
		if err != nil {
			return err
		}
		floor = f
		device += "; " + desc
		fmt.Fprintln(os.Stderr, desc)
	}
	opts := bench.Options{
		Model: m, Parallel: levels, PromptLen: *promptLen, GenLen: *genLen, BatchSize: *batch,
		FlashAttn: *fa, KVCacheType: *kv, Threads: *threads,
		// The thinking-mode preset: what a default Qwen3 request samples with.
		Sampling: sampling.Thinking.Engine(),
	}
	lctx, err := llamacpp.NewContext(m, bench.ContextParams(opts))
	if err != nil {
		return err
	}
	defer lctx.Close()
	opts.Context = lctx
	if *nAdapters > 0 {
		// The context stays sized for --parallel's largest level, as in
		// the runs BENCHMARKS.md reports; only the measured counts change.
		if opts.Parallel, err = parseLevels("--adapter-levels", *adapterLevels); err != nil {
			return err
		}
		return runAdapterBench(opts, m, *nAdapters, *adapterDType, mixOnly, log, device, *out)
	}
	if *batchMode {
		return runBatchBench(opts, log, device, m.Desc(), *out, *batchLines, *batchConc, *interactive)
	}
	if *httpMode {
		return runHTTPBench(opts, log, device, m.Desc(), *out, *peerURL, *peerModel, *peerName, *rounds, floor)
	}
	rows, err := bench.Run(opts, log, os.Stderr)
	table := bench.Markdown(rows)
	header := fmt.Sprintf("device: %s; model: %s; prompt %d, generated %d tokens; batch %d; flash attention %s; KV %s; threads %d\n\n", device, m.Desc(), *promptLen, *genLen, *batch, *fa, *kv, *threads)
	fmt.Print(header + table)
	if *out != "" {
		if werr := os.WriteFile(*out, []byte(header+table), 0o644); werr != nil {
			return werr
		}
	}
	return err
}

// runHTTPBench measures, for each N: the raw loop, then N streaming HTTP
// clients against an in-process server on loopback, then (optionally) the
// same clients against a peer server. With rounds > 1 the levels are
// measured that many times, alternated. floor, on the CPU, measures one
// sequence's memory floor (tok/s): at the start of every round, so that
// one stream's rate is set against the bandwidth of its own moment. On a
// shared machine the bandwidth moves by 20% between runs, and a floor
// measured once at start-up made the ratio move with it.
func runHTTPBench(o bench.Options, log *zap.Logger, device, desc, out, peerURL, peerModel, peerName string, rounds int, floor func() float64) error {
	var b strings.Builder
	fmt.Fprintf(&b, "device: %s; model: %s; prompt ~%d tokens (text), %d generated; batch %d; flash attention %s\n\n", device, desc, o.PromptLen, o.GenLen, o.BatchSize, o.FlashAttn)
	b.WriteString("|")
	if rounds > 1 {
		b.WriteString(" round |")
	}
	b.WriteString(" N | raw decode tok/s | qwen3-server HTTP tok/s | HTTP/raw | HTTP TTFT p50 | HTTP TTFT p95 |")
	if floor != nil {
		b.WriteString(" floor tok/s | raw ÷ floor | HTTP ÷ floor |")
	}
	if peerURL != "" {
		fmt.Fprintf(&b, " %s tok/s | %s TTFT p50 | qwen3-server/%s |", peerName, peerName, peerName)
	}
	b.WriteString("\n|")
	cols := 6
	if rounds > 1 {
		cols++
	}
	if floor != nil {
		cols += 3
	}
	if peerURL != "" {
		cols += 3
	}
	b.WriteString(strings.Repeat(" ---: |", cols) + "\n")
	var idle string
	var oneRaw, oneHTTP []float64 // one stream's rate ÷ its round's floor
	for round := 1; round <= rounds; round++ {
		f := 0.0
		if floor != nil {
			f = floor()
			fmt.Fprintf(os.Stderr, "round %d: floor %.1f tok/s\n", round, f)
		}
		for _, n := range o.Parallel {
			raw, err := bench.RawLoop(o, n)
			if err != nil {
				return err
			}
			e := scheduler.NewWithContext(o.Model, o.Context, scheduler.Options{
				ModelID: "bench", ContextSize: o.PromptLen + o.GenLen + 64, Parallel: n, BatchSize: o.BatchSize, QueueSize: n,
			}, log)
			cfg, _ := configs.Load(nil, nil)
			cfg.Server.Addr = "127.0.0.1:0"
			srv := server.New(cfg.Server, cfg.Sampling, log)
			srv.SetEngine(e)
			if err := srv.Start(); err != nil {
				return err
			}
			prompts := bench.RandomTextPrompts(n, o.PromptLen-8)
			ours, err := bench.HTTPRun(context.Background(), "qwen3-server", bench.HTTPOptions{BaseURL: "http://" + srv.Addr() + "/v1", Model: "bench", Prompts: prompts, GenLen: o.GenLen, IgnoreEOS: true})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			srv.Stop(ctx)
			cancel()
			e.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "N=%d raw %.0f tok/s, HTTP %.0f tok/s (%.3f), TTFT p50 %v\n", n, raw.RawDecodeTotal, ours.DecodeTotal, ours.DecodeTotal/raw.RawDecodeTotal, ours.TTFTp50)
			b.WriteString("|")
			if rounds > 1 {
				fmt.Fprintf(&b, " %d |", round)
			}
			fmt.Fprintf(&b, " %d | %.0f | %.0f | %.3f | %s | %s |", n, raw.RawDecodeTotal, ours.DecodeTotal, ours.DecodeTotal/raw.RawDecodeTotal, ours.TTFTp50.Round(100*time.Microsecond), ours.TTFTp95.Round(100*time.Microsecond))
			if floor != nil {
				if n == 1 {
					oneRaw = append(oneRaw, raw.RawDecodeTotal/f)
					oneHTTP = append(oneHTTP, ours.DecodeTotal/f)
					fmt.Fprintf(&b, " %.0f | %.2f | %.2f |", f, raw.RawDecodeTotal/f, ours.DecodeTotal/f)
				} else {
					fmt.Fprintf(&b, " %.0f | | |", f) // the floor bounds one sequence only
				}
			}
			if n == 1 && idle == "" {
				idle = fmt.Sprintf("Idle time to first token, ~%d-token prompt: HTTP %s, raw prefill %s (HTTP/raw %.3f).\n", o.PromptLen, ours.TTFTp50.Round(100*time.Microsecond), raw.RawTTFT.Round(100*time.Microsecond), ours.TTFTp50.Seconds()/raw.RawTTFT.Seconds())
			}
			if peerURL != "" {
				peer, err := bench.HTTPRun(context.Background(), peerName, bench.HTTPOptions{BaseURL: peerURL, Model: peerModel, Prompts: prompts, GenLen: o.GenLen})
				if err != nil {
					fmt.Fprintf(&b, " error | | |")
					fmt.Fprintf(os.Stderr, "N=%d %s: %v\n", n, peerName, err)
				} else {
					fmt.Fprintf(os.Stderr, "N=%d %s %.0f tok/s, TTFT p50 %v\n", n, peerName, peer.DecodeTotal, peer.TTFTp50)
					fmt.Fprintf(&b, " %.0f | %s | %.2f |", peer.DecodeTotal, peer.TTFTp50.Round(100*time.Microsecond), ours.DecodeTotal/peer.DecodeTotal)
				}
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\n" + idle)
	if len(oneHTTP) > 0 {
		fmt.Fprintf(&b, "One stream ÷ its round's memory floor, %d round(s): raw %s, HTTP %s.\n", len(oneHTTP), spread(oneRaw), spread(oneHTTP))
	}
	fmt.Print(b.String())
	if out != "" {
		return os.WriteFile(out, []byte(b.String()), 0o644)
	}
	return nil
}

// spread is "median M (min–max)" of xs, or the value alone for one.
func spread(xs []float64) string {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 1 {
		return fmt.Sprintf("%.2f", s[0])
	}
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return fmt.Sprintf("median %.2f (%.2f–%.2f)", med, s[0], s[len(s)-1])
}

// ttftRounds runs the interactive clients n times and keeps the median
// round's time to first token (p50) and the worst round's p95.
func ttftRounds(ctx context.Context, name string, o bench.HTTPOptions, n int) (bench.HTTPResult, error) {
	var p50s []time.Duration
	var out bench.HTTPResult
	for range n {
		r, err := bench.HTTPRun(ctx, name, o)
		if err != nil {
			return out, err
		}
		p50s = append(p50s, r.TTFTp50)
		out.TTFTp95 = max(out.TTFTp95, r.TTFTp95)
	}
	slices.Sort(p50s)
	out.TTFTp50 = p50s[n/2]
	return out, nil
}

// runBatchBench serves the Batch API on the scheduler (slots: the largest
// level) and measures issue 16's two targets through HTTP: interactive time
// to first token while a large batch runs against idle (≤ 1.5×), and a
// batch's throughput on an idle server against plain requests at the same
// concurrency (≥ 0.9×).
func runBatchBench(o bench.Options, log *zap.Logger, device, desc, out string, lines, conc, interactive int) error {
	slots := slices.Max(o.Parallel)
	e := scheduler.NewWithContext(o.Model, o.Context, scheduler.Options{
		ModelID: "bench", ContextSize: o.PromptLen + o.GenLen + 64, Parallel: slots, BatchSize: o.BatchSize, QueueSize: 64, LowMax: conc,
	}, log)
	defer e.Close()
	dir, err := os.MkdirTemp("", "bench-batch")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bc := batchpkg.DefaultConfig()
	bc.DataDir, bc.MaxConcurrency, bc.PollInterval = dir, conc, 50*time.Millisecond
	store, err := batchpkg.Open(bc, log)
	if err != nil {
		return err
	}
	defer store.Close()
	cfg, _ := configs.Load(nil, nil)
	cfg.Server.Addr = "127.0.0.1:0"
	srv := server.New(cfg.Server, cfg.Sampling, log)
	srv.SetEngine(e)
	srv.SetBatches(store)
	if err := store.Start(srv.Executor(), srv.ModelCheck()); err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Stop(ctx)
		store.Stop(ctx)
	}()
	ctx := context.Background()
	base := "http://" + srv.Addr() + "/v1"
	chat := bench.HTTPOptions{BaseURL: base, Model: "bench", Prompts: bench.RandomTextPrompts(interactive, o.PromptLen-8), GenLen: o.GenLen, IgnoreEOS: true}
	job := bench.BatchJob{BaseURL: base, Model: "bench", Prompts: bench.RandomTextPrompts(lines, o.PromptLen-8), GenLen: o.GenLen}

	// The first requests pay for warm-up (graph allocation, caches): one
	// round is thrown away, then each figure is the median of 5 rounds.
	if _, err := bench.HTTPRun(ctx, "warm-up", chat); err != nil {
		return err
	}
	idle, err := ttftRounds(ctx, "idle", chat, 5)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "interactive TTFT idle: p50 %v p95 %v\n", idle.TTFTp50, idle.TTFTp95)
	id, err := bench.StartBatch(ctx, job)
	if err != nil {
		return err
	}
	if err := bench.WaitRunning(ctx, base, id); err != nil {
		return err
	}
	loaded, err := ttftRounds(ctx, "under batch", chat, 5)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "interactive TTFT while a %d-line batch runs: p50 %v p95 %v\n", lines, loaded.TTFTp50, loaded.TTFTp95)
	if err := bench.CancelBatch(ctx, base, id); err != nil {
		return err
	}
	for { // the cancelled batch's lines leave the slots
		if st := e.Stats(); st.BusySlots == 0 && st.QueueDepth == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	small := job
	small.Prompts = job.Prompts[:max(lines/4, conc)]
	asBatch, err := bench.RunBatch(ctx, small)
	if err != nil {
		return err
	}
	plain, err := bench.RunPlain(ctx, small, conc)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d lines: batch %.0f tok/s, plain x%d %.0f tok/s\n", len(small.Prompts), asBatch.TokensPerSecond(), conc, plain.TokensPerSecond())

	var b strings.Builder
	fmt.Fprintf(&b, "device: %s; model: %s; %d slots; prompt ~%d tokens (text), %d generated; batch.max_concurrency %d; %d interactive clients\n\n",
		device, desc, slots, o.PromptLen, o.GenLen, conc, interactive)
	b.WriteString("| measure | reference | with batches | ratio | target |\n| --- | ---: | ---: | ---: | --- |\n")
	fmt.Fprintf(&b, "| interactive TTFT p50, median of 5 rounds after a warm-up (idle → while a %d-line batch runs) | %s | %s | %.2f | ≤ 1.5 |\n", lines,
		idle.TTFTp50.Round(100*time.Microsecond), loaded.TTFTp50.Round(100*time.Microsecond), loaded.TTFTp50.Seconds()/idle.TTFTp50.Seconds())
	fmt.Fprintf(&b, "| interactive TTFT p95, worst round | %s | %s | %.2f | |\n",
		idle.TTFTp95.Round(100*time.Microsecond), loaded.TTFTp95.Round(100*time.Microsecond), loaded.TTFTp95.Seconds()/idle.TTFTp95.Seconds())
	fmt.Fprintf(&b, "| tok/s of %d requests (%d plain clients → one batch) | %.0f | %.0f | %.2f | ≥ 0.9 |\n", len(small.Prompts), conc,
		plain.TokensPerSecond(), asBatch.TokensPerSecond(), asBatch.TokensPerSecond()/plain.TokensPerSecond())
	fmt.Print(b.String())
	if out != "" {
		return os.WriteFile(out, []byte(b.String()), 0o644)
	}
	return nil
}

// runAdapterBench generates random rank-16 PEFT adapters for the model's
// shape on all seven projections, converts and loads them, and compares
// decoding with them against the base.
func runAdapterBench(o bench.Options, m *llamacpp.Model, n int, dtype string, only []string, log *zap.Logger, device, out string) error {
	meta := func(k string) int {
		v, _ := m.Meta("qwen3." + k)
		i, _ := strconv.Atoi(v)
		return i
	}
	headDim := meta("attention.key_length")
	dims := modelgen.Dims{Layers: m.NLayer(), Hidden: m.NEmbd(), QDim: meta("attention.head_count") * headDim,
		KVDim: meta("attention.head_count_kv") * headDim, FFN: meta("feed_forward_length")}
	tmp, err := os.MkdirTemp("", "bench-adapters")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var as []engine.Adapter
	var size int64
	for i := 0; i < n; i++ {
		dir := filepath.Join(tmp, fmt.Sprintf("a%d", i))
		p := modelgen.RandomPEFT{Dims: dims, Rank: 16, Alpha: 32, DType: dtype, Seed: uint64(i + 1), Scale: 0.01,
			Targets: []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}}
		if err := p.Write(dir); err != nil {
			return err
		}
		gg := dir + ".gguf"
		if _, err := adapters.ConvertPEFT(dir, gg); err != nil {
			return err
		}
		st, _ := os.Stat(gg)
		size = st.Size()
		a, err := llamacpp.LoadAdapter(m, gg)
		if err != nil {
			return err
		}
		as = append(as, scheduler.AdapterFrom(a))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "device: %s; model: %s; adapters: rank 16, q/k/v/o/gate/up/down, %.0f MB each (%s PEFT); prompt %d, generated %d\n\n", device, m.Desc(), float64(size)/1e6, dtype, o.PromptLen, o.GenLen)
	if len(only) > 0 {
		err = writeMixRows(&b, o, as, only, log)
	} else {
		err = writeAdapterTables(&b, o, as, log)
	}
	if err != nil {
		return err
	}
	fmt.Print(b.String())
	if out != "" {
		return os.WriteFile(out, []byte(b.String()), 0o644)
	}
	return nil
}

// writeMixRows is --mix-rows: just those rows of the adapter table, at each
// of o.Parallel's counts.
func writeMixRows(b *strings.Builder, o bench.Options, as []engine.Adapter, only []string, log *zap.Logger) error {
	b.WriteString("| streams | N | tok/s |\n| --- | ---: | ---: |\n")
	for _, n := range o.Parallel {
		mix, err := bench.RunAdapterMix(o, as, n, only, log, os.Stderr)
		if err != nil {
			return err
		}
		for _, r := range mix {
			fmt.Fprintf(b, "| %s | %d | %.0f |\n", r.Name, r.N, r.TokS)
		}
	}
	return nil
}

// writeAdapterTables is the default: one adapter against the base at each
// of o.Parallel's counts, and with 16 among them the table at 16 streams.
func writeAdapterTables(b *strings.Builder, o bench.Options, as []engine.Adapter, log *zap.Logger) error {
	rows, err := bench.RunAdapters(o, as, log, os.Stderr)
	if err != nil {
		return err
	}
	b.WriteString("| comparison | N | reference tok/s | with adapters tok/s | slowdown |\n| --- | ---: | ---: | ---: | ---: |\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| %s | %d | %.0f | %.0f | %.1f%% |\n", r.Name, r.N, r.Base, r.Adapter, 100*r.Slowdown)
	}
	if !slices.Contains(o.Parallel, 16) {
		return nil
	}
	mix, err := bench.RunAdapterMix(o, as, 16, nil, log, os.Stderr)
	if err != nil {
		return err
	}
	ref := map[string]float64{}
	for _, r := range mix {
		ref[r.Name] = r.TokS
	}
	b.WriteString("\nAt 16 streams, one decode per step whatever the adapters (per-sequence adapters):\n\n")
	b.WriteString("| streams | tok/s | vs base only | vs 1 adapter |\n| --- | ---: | ---: | ---: |\n")
	for _, r := range mix {
		fmt.Fprintf(b, "| %s | %.0f | %.2fx | %.2fx |\n", r.Name, r.TokS, r.TokS/ref["base only"], r.TokS/ref["1 adapter"])
	}
	return nil
}

// parseLevels reads a comma-separated list of sequence counts.
func parseLevels(flag, list string) ([]int, error) {
	var levels []int
	for _, p := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: bad level %q", flag, p)
		}
		levels = append(levels, n)
	}
	return levels, nil
}

// memoryFloor measures the machine's memory read bandwidth with as many
// threads as llama.cpp uses, and with every core when that is fewer (the
// automatic count leaves cores to the server from 8 up: the floor stays the
// machine's), and divides it by the bytes of weights one decode step reads:
// the most tokens/s one sequence can decode on the CPU. It returns the
// measurement (each call measures again, for bench's rounds) and a line
// that describes its first result.
func memoryFloor(model string, threads int) (func() float64, string, error) {
	perToken, err := bench.WeightBytesPerToken(model)
	if err != nil {
		return nil, "", err
	}
	threads = max(threads, runtime.NumCPU())
	// A buffer the size of the weights: caches help it as they help decoding.
	measure := func() float64 { return llamacpp.MemoryReadBandwidth(threads, int(perToken)) / float64(perToken) }
	bw := measure() * float64(perToken)
	return measure, fmt.Sprintf("memory read bandwidth %.1f GB/s (%d threads), %.0f MB of weights read per token: floor %.1f tok/s for one sequence",
		bw/1e9, threads, float64(perToken)/1e6, bw/float64(perToken)), nil
}

// cpuModel is the processor's name from /proc/cpuinfo ("" elsewhere).
func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
