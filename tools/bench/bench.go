// Package bench measures the engine the way BENCHMARKS.md reports it: for
// each concurrency N, (a) a raw loop that drives llama_decode directly for N
// sequences (no scheduler, no sampling: the ceiling), then (b) the scheduler
// serving N concurrent requests of the same prompt and output lengths with
// the thinking-mode sampler, end-of-generation ignored. The ratio of (b) to
// (a) is the scheduler's overhead.
//
// Offline tooling (tools/): nothing on the serving path imports it.
package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
	"github.com/qwen3-lora/qwen3-server/engine/scheduler"
)

// Options of a bench run.
type Options struct {
	Model       *llamacpp.Model
	Context     *llamacpp.Context // from ContextParams(o)
	Parallel    []int
	PromptLen   int
	GenLen      int
	BatchSize   int
	FlashAttn   string
	KVCacheType string
	Threads     int
	Sampling    engine.Sampling
}

// Row is one concurrency level's figures.
type Row struct {
	N                 int
	RawPrefillTPS     float64
	RawDecodePerSeq   float64
	RawDecodeTotal    float64
	SchedPrefillTPS   float64
	SchedDecodePerSeq float64
	SchedDecodeTotal  float64
	TTFTp50, TTFTp95  time.Duration
	RawTTFT           time.Duration // prefill time of one prompt alone (N=1 only)
	Ratio             float64
	Profile           scheduler.Profile
}

// Run measures every N in o.Parallel.
func Run(o Options, log *zap.Logger, progress io.Writer) ([]Row, error) {
	lctx := o.Context
	var rows []Row
	for _, n := range o.Parallel {
		prompts := randomPrompts(o.Model, n, o.PromptLen)
		raw, err := rawLoop(o, lctx, n, prompts)
		if err != nil {
			return rows, fmt.Errorf("raw loop N=%d: %w", n, err)
		}
		fmt.Fprintf(progress, "N=%d raw: prefill %.0f tok/s, decode %.1f tok/s/seq, %.0f tok/s total\n", n, raw.RawPrefillTPS, raw.RawDecodePerSeq, raw.RawDecodeTotal)
		if err := schedRun(o, lctx, n, prompts, &raw, log); err != nil {
			return rows, fmt.Errorf("scheduler N=%d: %w", n, err)
		}
		fmt.Fprintf(progress, "N=%d scheduler: decode %.1f tok/s/seq, %.0f tok/s total, TTFT p50 %v, ratio %.3f\n", n, raw.SchedDecodePerSeq, raw.SchedDecodeTotal, raw.TTFTp50, raw.Ratio)
		p := raw.Profile
		if p.Steps > 0 {
			per := func(d time.Duration) string { return (d / time.Duration(p.Steps)).String() }
			fmt.Fprintf(progress, "N=%d scheduler per step (%d steps): launch %s, book-keeping %s, GPU wait %s, sample %s, accept %s\n",
				n, p.Steps, per(p.Launch), per(p.Book), per(p.Wait), per(p.Sample), per(p.Accept))
		}
		rows = append(rows, raw)
	}
	return rows, nil
}

// randomPrompts draws ordinary (non-special) token ids; each sequence gets
// its own prompt so that no prefix cache helps.
func randomPrompts(m *llamacpp.Model, n, length int) [][]int32 {
	r := rand.New(rand.NewPCG(42, uint64(n)))
	out := make([][]int32, n)
	for i := range out {
		p := make([]int32, length)
		for j := range p {
			p[j] = int32(r.IntN(150000))
		}
		out[i] = p
	}
	return out
}

// ContextParams is the context a bench run needs: one context serves every
// level (sequences 0..N-1 of it), so that no level measures allocation.
func ContextParams(o Options) llamacpp.ContextParams {
	n := slices.Max(o.Parallel)
	return llamacpp.ContextParams{
		NCtx: n * (o.PromptLen + o.GenLen + 8), NBatch: o.BatchSize, NUBatch: o.BatchSize, NSeqMax: n,
		Threads: o.Threads, FlashAttn: o.FlashAttn, KVType: o.KVCacheType,
	}
}

func rawLoop(o Options, lctx *llamacpp.Context, n int, prompts [][]int32) (Row, error) {
	row := Row{N: n}
	for s := range n {
		lctx.SeqRm(s, -1, -1)
	}
	batch := llamacpp.NewBatch(max(o.BatchSize, n))
	defer batch.Close()

	// Prefill every prompt, packing the batch full.
	start := time.Now()
	for s, p := range prompts {
		for i, tok := range p {
			if batch.Len() == batch.Cap() {
				if err := lctx.Decode(batch); err != nil {
					return row, err
				}
				batch.Clear()
			}
			batch.Add(tok, i, s, i == len(p)-1)
		}
		if s == 0 && n == 1 {
			// time one prompt alone: the raw time to first token
			if err := lctx.Decode(batch); err != nil {
				return row, err
			}
			lctx.Logits(batch.Len() - 1) // waits for the result
			batch.Clear()
			row.RawTTFT = time.Since(start)
		}
	}
	if batch.Len() > 0 {
		if err := lctx.Decode(batch); err != nil {
			return row, err
		}
		lctx.Logits(batch.Len() - 1) // synchronises
	}
	row.RawPrefillTPS = float64(n*o.PromptLen) / time.Since(start).Seconds()

	// Decode: one token per sequence per step; the logits are fetched (which
	// waits for the GPU) but not sampled.
	start = time.Now()
	for step := 0; step < o.GenLen; step++ {
		batch.Clear()
		for s := range n {
			batch.Add(prompts[s][step%len(prompts[s])], o.PromptLen+step, s, true)
		}
		if err := lctx.Decode(batch); err != nil {
			return row, err
		}
		for s := range n {
			_ = lctx.Logits(s)
		}
	}
	secs := time.Since(start).Seconds()
	row.RawDecodePerSeq = float64(o.GenLen) / secs
	row.RawDecodeTotal = float64(n*o.GenLen) / secs
	return row, nil
}

func schedRun(o Options, lctx *llamacpp.Context, n int, prompts [][]int32, row *Row, log *zap.Logger) error {
	return schedRunWith(o, lctx, n, prompts, row, log, nil)
}

// schedRunWith is schedRun with per-request adapters (nil: base model).
func schedRunWith(o Options, lctx *llamacpp.Context, n int, prompts [][]int32, row *Row, log *zap.Logger, uses func(i int) []engine.AdapterUse) error {
	e := scheduler.NewWithContext(o.Model, lctx, scheduler.Options{
		ContextSize: o.PromptLen + o.GenLen + 8, Parallel: n, BatchSize: o.BatchSize, QueueSize: n,
	}, log)
	results := make([]*engine.Result, n)
	errs := make([]error, n)
	stamps := make([][]time.Time, n) // arrival time of every token
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stamps[i] = make([]time.Time, 0, o.GenLen)
			req := &engine.Request{PromptTokens: prompts[i], MaxTokens: o.GenLen, IgnoreEOS: true, Sampling: o.Sampling}
			if uses != nil {
				req.Adapters = uses(i)
			}
			results[i], errs[i] = e.Generate(context.Background(), req, func(engine.Chunk) error {
				stamps[i] = append(stamps[i], time.Now())
				return nil
			})
		}()
	}
	wg.Wait()
	row.Profile = e.Profile()
	e.Close()
	var ttfts []time.Duration
	for i := range n {
		if errs[i] != nil {
			return errs[i]
		}
		ttfts = append(ttfts, results[i].TimeToFirstToken)
	}
	row.TTFTp50, row.TTFTp95 = percentiles(ttfts)
	total, lastFirst, err := steadyState(stamps)
	if err != nil {
		return fmt.Errorf("%w (prompts too long for the batch size, or gen-len too short)", err)
	}
	row.SchedPrefillTPS = float64(n*o.PromptLen) / lastFirst.Sub(start).Seconds()
	row.SchedDecodeTotal = total
	row.SchedDecodePerSeq = row.SchedDecodeTotal / float64(n)
	row.Ratio = row.SchedDecodeTotal / row.RawDecodeTotal
	return nil
}

// Markdown renders rows as the BENCHMARKS.md table.
func Markdown(rows []Row) string {
	s := "| N | raw prefill tok/s | raw decode tok/s/seq | raw decode tok/s total | sched decode tok/s/seq | sched decode tok/s total | sched/raw | TTFT p50 | TTFT p95 |\n"
	s += "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
	for _, r := range rows {
		s += fmt.Sprintf("| %d | %.0f | %.1f | %.0f | %.1f | %.0f | %.3f | %s | %s |\n",
			r.N, r.RawPrefillTPS, r.RawDecodePerSeq, r.RawDecodeTotal, r.SchedDecodePerSeq, r.SchedDecodeTotal, r.Ratio,
			r.TTFTp50.Round(time.Millisecond/10), r.TTFTp95.Round(time.Millisecond/10))
	}
	return s
}

// RawLoop measures the raw loop alone for n sequences (random prompts).
func RawLoop(o Options, n int) (Row, error) {
	return rawLoop(o, o.Context, n, randomPrompts(o.Model, n, o.PromptLen))
}

// AdapterRow compares decode with adapters against the base.
type AdapterRow struct {
	Name     string
	N        int
	Base     float64 // tok/s total, base model
	Adapter  float64 // tok/s total, with adapters
	Slowdown float64 // 1 - Adapter/Base
}

// RunAdapters measures, through the scheduler: one adapter against the base
// at each of o.Parallel's sequence counts (RunAdapterMix has the mixes).
func RunAdapters(o Options, as []engine.Adapter, log *zap.Logger, progress io.Writer) ([]AdapterRow, error) {
	one := func(int) []engine.AdapterUse { return []engine.AdapterUse{{Adapter: as[0], Scale: 1}} }
	run := func(n int, uses func(int) []engine.AdapterUse) (float64, error) {
		var row Row
		if err := schedRunWith(o, o.Context, n, randomPrompts(o.Model, n, o.PromptLen), &row, log, uses); err != nil {
			return 0, err
		}
		printProfile(progress, fmt.Sprintf("N=%d adapters=%v", n, uses != nil), row)
		return row.SchedDecodeTotal, nil
	}
	var rows []AdapterRow
	for _, n := range o.Parallel {
		base, err := run(n, nil)
		if err != nil {
			return rows, err
		}
		with, err := run(n, one)
		if err != nil {
			return rows, err
		}
		rows = append(rows, AdapterRow{Name: "1 adapter vs base", N: n, Base: base, Adapter: with, Slowdown: 1 - with/base})
	}
	return rows, nil
}

// printProfile writes row's per-decode-call profile (one call per step),
// which tells the GPU's share of a step from the host's.
func printProfile(progress io.Writer, what string, row Row) {
	p := row.Profile
	if p.DecodeSteps == 0 {
		fmt.Fprintf(progress, "%s: %.0f tok/s (%d decode calls)\n", what, row.SchedDecodeTotal, p.Steps)
		return
	}
	per := func(d time.Duration, steps int) string { return (d / time.Duration(steps)).String() }
	fmt.Fprintf(progress, "%s: %.0f tok/s; per decode call (%d): launch %s, GPU wait %s, sample %s, accept %s; decode-only steps (%d): launch %s, GPU wait %s\n",
		what, row.SchedDecodeTotal, p.Steps, per(p.Launch, p.Steps), per(p.Wait, p.Steps), per(p.Sample, p.Steps), per(p.Accept, p.Steps),
		p.DecodeSteps, per(p.DecodeLaunch, p.DecodeSteps), per(p.DecodeWait, p.DecodeSteps))
}

// AdapterMixRow is one row of the adapter-mix table: N streams decoding at
// once, each with the adapters the row names, in one decode per step.
type AdapterMixRow struct {
	Name string
	N    int
	TokS float64 // tok/s total
}

// RunAdapterMix measures, through the scheduler at n streams: the base
// alone; one adapter on every stream; 4 adapters x n/4 streams; n adapters
// x 1 stream; n/2 base + n/2 adapted streams (4 adapters among them). Rows
// that need more adapters than as holds are left out. Every row decodes all
// n streams in one llama_decode per step, whatever their adapters (the
// per-sequence adapters of engine/llamacpp), so the streams of one row
// share its rate: the mixed row's base streams run at its tok/s / n each.
// only, when not empty, keeps the rows of those keys (MixRowKeys), e.g. to
// profile one row at a time.
func RunAdapterMix(o Options, as []engine.Adapter, n int, only []string, log *zap.Logger, progress io.Writer) ([]AdapterMixRow, error) {
	by := func(k int) func(int) []engine.AdapterUse {
		return func(i int) []engine.AdapterUse { return []engine.AdapterUse{{Adapter: as[i%k], Scale: 1}} }
	}
	type spec struct {
		key  string
		name string
		need int
		uses func(int) []engine.AdapterUse
	}
	specs := []spec{
		{"base", "base only", 0, func(int) []engine.AdapterUse { return nil }},
		{"one", "1 adapter", 1, by(1)},
		{"4x4", fmt.Sprintf("4 adapters x %d streams", n/4), 4, by(4)},
		{"16x1", fmt.Sprintf("%d adapters x 1 stream", n), n, by(n)},
		{"mixed", fmt.Sprintf("%d base + %d adapted (4 adapters)", n/2, n-n/2), 4, func(i int) []engine.AdapterUse {
			if i < n/2 {
				return nil
			}
			return by(4)(i)
		}},
	}
	var rows []AdapterMixRow
	for _, sp := range specs {
		if sp.need > len(as) || len(only) > 0 && !slices.Contains(only, sp.key) {
			continue
		}
		var row Row
		if err := schedRunWith(o, o.Context, n, randomPrompts(o.Model, n, o.PromptLen), &row, log, sp.uses); err != nil {
			return rows, err
		}
		printProfile(progress, fmt.Sprintf("N=%d %s", n, sp.name), row)
		rows = append(rows, AdapterMixRow{Name: sp.name, N: n, TokS: row.SchedDecodeTotal})
	}
	return rows, nil
}

// MixRowKeys names RunAdapterMix's rows, in its order: base only, one
// adapter, 4 adapters x n/4 streams, n adapters x 1 stream, n/2 base + n/2
// adapted.
var MixRowKeys = []string{"base", "one", "4x4", "16x1", "mixed"}

// percentiles returns p50 and p95 of ds (sorted in place).
func percentiles(ds []time.Duration) (time.Duration, time.Duration) {
	slices.Sort(ds)
	return ds[len(ds)/2], ds[min(len(ds)-1, int(float64(len(ds))*0.95))]
}

// steadyState is the decode throughput while all streams were running:
// tokens that arrived after the last stream's first token and no later
// than the first stream's last token, over that window — the scheduler's
// counterpart of the raw loop's decode phase, without prefill or tail.
// stamps[i] are stream i's token arrival times. It also returns the last
// first-token time.
func steadyState(stamps [][]time.Time) (float64, time.Time, error) {
	var lastFirst, firstEnd time.Time
	for i, st := range stamps {
		if len(st) < 2 {
			return 0, lastFirst, fmt.Errorf("stream %d got %d tokens", i, len(st))
		}
		if st[0].After(lastFirst) {
			lastFirst = st[0]
		}
		if end := st[len(st)-1]; firstEnd.IsZero() || end.Before(firstEnd) {
			firstEnd = end
		}
	}
	count := 0
	for _, st := range stamps {
		for _, ts := range st {
			if ts.After(lastFirst) && !ts.After(firstEnd) {
				count++
			}
		}
	}
	window := firstEnd.Sub(lastFirst).Seconds()
	if window <= 0 || count < len(stamps) {
		return 0, lastFirst, fmt.Errorf("no steady-state window over %d streams", len(stamps))
	}
	return float64(count) / window, lastFirst, nil
}
