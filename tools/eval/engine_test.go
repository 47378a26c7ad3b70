package eval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/qwen3-lora/qwen3-server/adapters"
	"github.com/qwen3-lora/qwen3-server/configs"
	"github.com/qwen3-lora/qwen3-server/conversation"
	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
	"github.com/qwen3-lora/qwen3-server/engine/scheduler"
	"github.com/qwen3-lora/qwen3-server/internal/testutil"
	"github.com/qwen3-lora/qwen3-server/server"
	"github.com/qwen3-lora/qwen3-server/tools/eval/metrics"
	"github.com/qwen3-lora/qwen3-server/tools/modelgen"
)

// startEngine runs the model on the CPU with one llama.cpp thread: on a
// loaded machine two threads wait on each other at every barrier, which
// makes these tests several times slower.
func startEngine(t *testing.T, model string, parallel int) *scheduler.Engine {
	t.Helper()
	llamacpp.SetLogger(nil)
	e, err := scheduler.New(scheduler.Options{ModelPath: testutil.Model(t, model), GPULayers: 0, ContextSize: 256,
		Parallel: parallel, Threads: 1, LibDir: testutil.LibDir()}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// planner has the server's default configuration.
func planner(t testing.TB) *conversation.Planner {
	cfg, err := configs.Load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Sampling
	return conversation.NewPlanner(conversation.Defaults{EnableThinking: s.EnableThinking, ThinkingBudget: s.ThinkingBudget,
		Thinking: s.Thinking.Params(), NonThinking: s.NonThinking.Params()})
}

// chainItems mixes labels with and without reasoning, Chinese and English.
func chainItems(t *testing.T) []*Item {
	d, err := Load(Source{Path: write(t, t.TempDir(), "chain.jsonl", strings.Join([]string{
		`{"instruction": "Say hello", "output": "Hello!"}`,
		`{"instruction": "头痛怎么办？", "output": "<think>\n用户问头痛。\n</think>\n\n多休息，多喝水。Hello!"}`,
		`{"instruction": "Greet me", "output": "<think>\nA greeting.\n</think>\n\nHello there, how are you?"}`,
		`{"instruction": "<|im_start|>user\n你好<|im_end|>\n", "output": "<|im_start|>assistant\n<think>\n\n<think>\n你好！Hello!<|im_end|>"}`,
		`{"instruction": "Answer", "output": "Goodbye."}`,
	}, "\n"))})
	if err != nil {
		t.Fatal(err)
	}
	return d.Items
}

// The chain model answers every prompt with "Hello!", after the reasoning
// "Let me think." in thinking mode: so every prediction, and from the
// metrics (tested against LLaMA-Factory's Python stack) every score, is
// known.
func chainWant(it *Item, thinking bool, mode ScoreMode) (predict, label string, scores metrics.Scores) {
	reasoning := ""
	if thinking {
		reasoning = "Let me think."
	}
	predict, label = "Hello!", it.Label
	if mode == ScoreFull {
		predict, label = JoinThink(reasoning, "Hello!"), JoinThink(it.LabelReasoning, it.Label)
	}
	s, _ := metrics.Score(predict, label)
	return predict, label, s
}

func checkChainRun(t *testing.T, out string, items []*Item, model string, th Thinking, mode ScoreMode, r *ModelResult) {
	t.Helper()
	preds, err := ReadPredictions(filepath.Join(out, model, PredictionsFile), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(preds) != len(items) {
		t.Fatalf("%d predictions, want %d", len(preds), len(items))
	}
	var want []metrics.Scores
	for i, p := range preds {
		it := items[i]
		thinking := th.on(it)
		wp, wl, ws := chainWant(it, thinking, mode)
		wr := ""
		if thinking {
			wr = "Let me think."
		}
		if *p.Index != i || p.Prompt != it.Prompt() || p.Predict != wp || p.Label != wl || p.Reasoning != wr || p.Thinking != thinking || p.FinishReason != "stop" {
			t.Errorf("%s line %d: %+v\nwant predict %q label %q reasoning %q thinking %v", model, i+1, p, wp, wl, wr, thinking)
		}
		if thinking && p.ReasoningTokens == 0 {
			t.Errorf("%s line %d: reasoning tokens not counted", model, i+1)
		}
		want = append(want, ws)
	}
	avg := metrics.Average(want)
	if r.Scores != avg || !reflect.DeepEqual(r.PerSample, want) {
		t.Errorf("%s scores %+v, want %+v", model, r.Scores, avg)
	}
	b, err := os.ReadFile(filepath.Join(out, model, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]float64
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res["predict_bleu-4"] != avg.BLEU4 || res["predict_rouge-1"] != avg.Rouge1 || res["predict_rouge-2"] != avg.Rouge2 || res["predict_rouge-l"] != avg.RougeL ||
		res["predict_runtime"] <= 0 || res["predict_samples_per_second"] <= 0 {
		t.Errorf("%s: predict_results.json %v, want the averages %+v and the runtime", model, res, avg)
	}
}

// End to end on the chain model: the prompts rendered and the reasoning
// parsed by the conversation layer, in both score modes and thinking modes.
func TestEvalChainModel(t *testing.T) {
	e := startEngine(t, "tiny-chain.gguf", 2)
	gen := &EngineGenerator{Engine: e, Planner: planner(t), Models: map[string]EngineModel{"base": {}}, Request: Request{Sampling: Greedy(), MaxTokens: 64}}
	items := chainItems(t)
	for _, c := range []struct {
		th   Thinking
		mode ScoreMode
	}{{ThinkingAuto, ScoreAnswer}, {ThinkingAuto, ScoreFull}, {ThinkingOn, ScoreAnswer}, {ThinkingOff, ScoreFull}} {
		t.Run(string(c.th)+"-"+string(c.mode), func(t *testing.T) {
			out := t.TempDir()
			res, err := Run(context.Background(), gen, items, Options{Models: []string{"base"}, OutDir: out, Thinking: c.th, Score: c.mode})
			if err != nil {
				t.Fatal(err)
			}
			checkChainRun(t, out, items, "base", c.th, c.mode, res[0])
			if want := map[Thinking]int{ThinkingAuto: 2, ThinkingOn: 5, ThinkingOff: 0}[c.th]; res[0].ThinkingItems != want || res[0].LeakedItems != 0 {
				t.Errorf("%d thinking items, %d leaked; want %d, 0", res[0].ThinkingItems, res[0].LeakedItems, want)
			}
		})
	}
}

// Through a running server (--url): the same predictions and scores.
func TestEvalThroughServer(t *testing.T) {
	e := startEngine(t, "tiny-chain.gguf", 2)
	cfg, _ := configs.Load(nil, nil)
	s := server.New(configs.ServerConfig{Addr: "127.0.0.1:0", MaxBodyBytes: 1 << 20}, cfg.Sampling, zaptest.NewLogger(t))
	s.SetEngine(e)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	gen := &HTTPGenerator{URL: ts.URL, Request: Request{Sampling: Greedy(), MaxTokens: 64}}
	items := chainItems(t)
	out := t.TempDir()
	res, err := Run(context.Background(), gen, items, Options{Models: []string{"base"}, OutDir: out, Parallel: 2, Thinking: ThinkingAuto, Score: ScoreAnswer})
	if err != nil {
		t.Fatal(err)
	}
	checkChainRun(t, out, items, "base", ThinkingAuto, ScoreAnswer, res[0])
	_, err = Run(context.Background(), gen, items, Options{Models: []string{"missing"}, OutDir: t.TempDir(), Thinking: ThinkingAuto, Score: ScoreAnswer})
	var ie *ItemError
	var ae *APIError
	if !errors.As(err, &ie) || !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("unknown adapter: %v, want an *ItemError wrapping a 404 *APIError", err)
	}
}

// recorder wraps the engine and notes which models were in flight together.
type recorder struct {
	engine.Engine
	mu       sync.Mutex
	inFlight map[string]int
	mixed    bool // base and an adapter in flight at once
}

func key(r *engine.Request) string {
	if len(r.Adapters) == 0 {
		return "base"
	}
	return fmt.Sprintf("%p", r.Adapters[0].Adapter)
}

func (r *recorder) Generate(ctx context.Context, req *engine.Request, fn func(engine.Chunk) error) (*engine.Result, error) {
	k := key(req)
	r.mu.Lock()
	r.inFlight[k]++
	if len(r.inFlight) > 1 {
		r.mixed = true
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		if r.inFlight[k]--; r.inFlight[k] == 0 {
			delete(r.inFlight, k)
		}
		r.mu.Unlock()
	}()
	return r.Engine.Generate(ctx, req, fn)
}

// Base and a PEFT adapter (through the server's adapter registry) in one
// engine, interleaved: both models' sequences run at the same time, and the
// adapter's answers are its own.
func TestEvalBaseAndAdapterInterleaved(t *testing.T) {
	e := startEngine(t, "tiny-random.gguf", 4)
	root := t.TempDir()
	dir := filepath.Join(root, "medical")
	p := modelgen.RandomPEFT{Dims: modelgen.Dims{Layers: 2, Hidden: 64, QDim: 64, KVDim: 32, FFN: 192}, Rank: 8, Alpha: 16, DType: "F32",
		Seed: 5, Scale: 0.5, Targets: []string{"q_proj", "v_proj", "down_proj"}}
	if err := p.Write(dir); err != nil {
		t.Fatal(err)
	}
	reg, err := adapters.NewRegistry(e, []string{root}, t.TempDir(), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Load("medical", dir, 1); err != nil {
		t.Fatal(err)
	}
	use, m, release, err := reg.Acquire("medical", -1)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	rec := &recorder{Engine: e, inFlight: map[string]int{}}
	gen := &EngineGenerator{Engine: rec, Planner: planner(t), Request: Request{Sampling: Greedy(), MaxTokens: 8},
		Models: map[string]EngineModel{"base": {}, "medical": {Adapters: []engine.AdapterUse{use}, Manifest: m}}}
	var lines []string
	for i := 0; i < 4; i++ {
		lines = append(lines, fmt.Sprintf(`{"instruction": "Question %d about fever", "output": "Answer %d"}`, i, i))
	}
	d, err := Load(Source{Path: write(t, t.TempDir(), "t.jsonl", strings.Join(lines, "\n"))})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	res, err := Run(context.Background(), gen, d.Items, Options{Models: []string{"base", "medical"}, OutDir: out, Parallel: 4, Thinking: ThinkingOff, Score: ScoreAnswer})
	if err != nil {
		t.Fatal(err)
	}
	if !rec.mixed {
		t.Error("base and adapter sequences never ran at the same time")
	}
	differ := 0
	for i := range d.Items {
		b, a := res[0].Predictions[i], res[1].Predictions[i]
		if b.CompletionTokens == 0 || a.CompletionTokens == 0 {
			t.Errorf("item %d: nothing generated", i)
		}
		if b.Predict != a.Predict {
			differ++
		}
	}
	if differ == 0 {
		t.Error("the adapter's answers are the base model's: the adapter was not applied")
	}
	// Each model alone gives the same answers as interleaved (greedy).
	for _, name := range []string{"base", "medical"} {
		solo, err := Run(context.Background(), gen, d.Items, Options{Models: []string{name}, OutDir: t.TempDir(), Parallel: 1, Thinking: ThinkingOff, Score: ScoreAnswer})
		if err != nil {
			t.Fatal(err)
		}
		mixed := res[0]
		if name == "medical" {
			mixed = res[1]
		}
		for i := range d.Items {
			if solo[0].Predictions[i].Predict != mixed.Predictions[i].Predict {
				t.Errorf("%s item %d: %q alone, %q interleaved", name, i, solo[0].Predictions[i].Predict, mixed.Predictions[i].Predict)
			}
		}
	}
}

// stopAfter cancels the run once n items have finished.
type stopAfter struct {
	Generator
	n      int
	cancel context.CancelFunc
	mu     sync.Mutex
	calls  int
	done   int
}

func (s *stopAfter) Generate(ctx context.Context, model string, it *Item, thinking bool) (*Output, error) {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	out, err := s.Generator.Generate(ctx, model, it, thinking)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		if s.done++; s.done == s.n && s.cancel != nil {
			s.cancel()
		}
	}
	return out, err
}

// An interrupted run keeps what finished; --resume runs only the rest
// (also past a line torn by a kill) and ends with the full results.
func TestEvalResume(t *testing.T) {
	e := startEngine(t, "tiny-chain.gguf", 2)
	base := &EngineGenerator{Engine: e, Planner: planner(t), Models: map[string]EngineModel{"a": {}, "b": {}}, Request: Request{Sampling: Greedy(), MaxTokens: 64}}
	items := chainItems(t)
	out := t.TempDir()
	opts := Options{Models: []string{"a", "b"}, OutDir: out, Thinking: ThinkingAuto, Score: ScoreAnswer}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := &stopAfter{Generator: base, n: 3, cancel: cancel}
	_, err := Run(ctx, g, items, opts)
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run: %v, want ErrInterrupted", err)
	}
	kept := 0
	for _, m := range opts.Models {
		p, err := ReadPredictions(filepath.Join(out, m, PredictionsFile), false)
		if err != nil {
			t.Fatal(err)
		}
		kept += len(p)
	}
	if kept < 3 || kept >= 2*len(items) {
		t.Fatalf("%d predictions kept, want at least the 3 finished and fewer than all %d", kept, 2*len(items))
	}
	// Without --resume the files are not overwritten.
	if _, err := Run(context.Background(), base, items, opts); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("second run without resume: %v, want a refusal naming --resume", err)
	}
	// A kill can leave half a line at the end.
	f, err := os.OpenFile(filepath.Join(out, "a", PredictionsFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"prompt":"Say hel`)
	f.Close()
	opts.Resume = true
	g2 := &stopAfter{Generator: base}
	res, err := Run(context.Background(), g2, items, opts)
	if err != nil {
		t.Fatal(err)
	}
	if g2.calls != 2*len(items)-kept {
		t.Errorf("resumed run generated %d items, want the %d left", g2.calls, 2*len(items)-kept)
	}
	for i, m := range opts.Models {
		checkChainRun(t, out, items, m, ThinkingAuto, ScoreAnswer, res[i])
	}
	// A checkpoint of another test set is refused.
	other := Renumber(items[1:])
	if _, err := Run(context.Background(), base, other, opts); err == nil || !strings.Contains(err.Error(), "another") {
		t.Errorf("resume on another test set: %v, want a refusal", err)
	}
}

// The generation limits reach the engine: --max-tokens inside the
// reasoning leaves no answer (counted as leaked, finish reason length),
// and a thinking budget closes the reasoning early, the answer following.
func TestEvalLimits(t *testing.T) {
	e := startEngine(t, "tiny-chain.gguf", 2)
	items := chainItems(t)[1:3] // labels with reasoning: thinking on
	run := func(req Request) *ModelResult {
		gen := &EngineGenerator{Engine: e, Planner: planner(t), Models: map[string]EngineModel{"base": {}}, Request: req}
		res, err := Run(context.Background(), gen, items, Options{Models: []string{"base"}, OutDir: t.TempDir(), Thinking: ThinkingAuto, Score: ScoreAnswer})
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	cut := run(Request{Sampling: Greedy(), MaxTokens: 3})
	for _, p := range cut.Predictions {
		if p.FinishReason != "length" || p.Answer != "" || p.CompletionTokens != 3 {
			t.Errorf("max tokens 3: %+v", p)
		}
	}
	if cut.LeakedItems != 2 || cut.EmptyAnswers != 2 {
		t.Errorf("max tokens 3: %d leaked, %d empty answers; want 2, 2", cut.LeakedItems, cut.EmptyAnswers)
	}
	one := 1
	budget := run(Request{Sampling: Greedy(), MaxTokens: 64, ThinkingBudget: &one})
	for _, p := range budget.Predictions {
		// The chain's first reasoning token is "Let"; after the forced end
		// of the reasoning it continues with its answer.
		if p.ReasoningTokens != 1 || p.Reasoning != "Let" || p.Answer != "Hello!" {
			t.Errorf("thinking budget 1: %+v", p)
		}
	}
}
