package scheduler

import (
	"context"
	"slices"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
	"github.com/qwen3-lora/qwen3-server/internal/testutil"
)

// Stats reports the KV cells of running sequences only, and the distinct
// adapters of running and of queued requests.
func TestStatsPublish(t *testing.T) {
	a, b, c := &Adapter{}, &Adapter{}, &Adapter{}
	seq := func(uses ...*Adapter) *sequence {
		req := &engine.Request{}
		for _, u := range uses {
			req.Adapters = append(req.Adapters, engine.AdapterUse{Adapter: u, Scale: 1})
		}
		return &sequence{req: req}
	}
	e := &Engine{kvCells: 1000, slots: []*slot{
		{id: 0, cache: make([]int32, 30), seq: seq(a)},
		{id: 1, cache: make([]int32, 50), seq: seq(a, b)},
		{id: 2, cache: make([]int32, 70)}, // idle, its cells kept for prefix reuse
		{id: 3, cache: make([]int32, 5), seq: seq()},
	}}
	e.busy.Store(3)
	e.queue = []*sequence{seq(c), seq(a), seq()}
	e.publish()
	st := e.Stats()
	if st.KVCells != 1000 || st.KVCellsUsed != 85 || st.BusySlots != 3 || st.QueueDepth != 3 {
		t.Fatalf("%+v", st)
	}
	if !slices.Equal(st.RunningAdapters, []engine.Adapter{a, b}) || !slices.Equal(st.WaitingAdapters, []engine.Adapter{c, a}) {
		t.Fatalf("running %v waiting %v", st.RunningAdapters, st.WaitingAdapters)
	}
	// Everything ends: the counts go back to zero once.
	for _, s := range e.slots {
		s.seq = nil
	}
	e.queue = nil
	e.publish()
	if st = e.Stats(); st.KVCellsUsed != 0 || st.RunningAdapters != nil || st.WaitingAdapters != nil {
		t.Fatalf("idle: %+v", st)
	}
}

// On the real engine: KVCells is the context's size, KVCellsUsed counts
// the running sequence's prompt and output, and the slot's token list it
// is counted from equals what llama.cpp's memory holds for the sequence.
func TestStatsKVCellsOnTheModel(t *testing.T) {
	m, err := llamacpp.LoadModel(llamacpp.ModelParams{Path: testutil.Model(t, "tiny-random.gguf")})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const perSeq, seqs = 512, 2
	lctx, err := llamacpp.NewContext(m, llamacpp.ContextParams{NCtx: perSeq * seqs, NBatch: 64, NUBatch: 64, NSeqMax: seqs, Threads: 2, FlashAttn: "off"})
	if err != nil {
		t.Fatal(err)
	}
	defer lctx.Close()
	e := NewWithContext(m, lctx, Options{Parallel: seqs, BatchSize: 64, QueueSize: 4, Threads: 2}, zaptest.NewLogger(t))
	prompt, err := e.Tokenize("<|im_start|>user\nhow many cells<|im_end|>\n<|im_start|>assistant\n", true)
	if err != nil {
		t.Fatal(err)
	}
	const maxTokens = 400 // long enough to be still running when the first chunk arrives
	var during engine.Stats
	chunks := 0
	res, err := e.Generate(context.Background(), &engine.Request{PromptTokens: prompt, MaxTokens: maxTokens, IgnoreEOS: true}, func(engine.Chunk) error {
		// Stats are published at the end of a step, after its chunks went
		// out; by the 10th chunk, the steps before it have published.
		if chunks++; chunks == 10 {
			during = e.Stats()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.CompletionTokens != maxTokens {
		t.Fatalf("generated %d tokens", res.CompletionTokens)
	}
	if during.KVCells != perSeq*seqs || during.BusySlots != 1 || during.KVCellsUsed < len(prompt) || during.KVCellsUsed > len(prompt)+maxTokens {
		t.Fatalf("while running (prompt %d tokens): %+v", len(prompt), during)
	}
	// The loop publishes right after the step that woke this goroutine;
	// under load the read above can come first.
	waitFor(t, func() bool { st := e.Stats(); return st.KVCellsUsed == 0 && st.BusySlots == 0 }, "Stats to show the finished sequence gone")
	e.Close() // the loop is stopped: the slots can be read here
	held := 0
	for _, s := range e.slots {
		if got := lctx.SeqPosMax(s.id) + 1; got != len(s.cache) {
			t.Errorf("slot %d: llama.cpp holds positions 0..%d, the slot's list %d tokens", s.id, got-1, len(s.cache))
		}
		held += len(s.cache)
	}
	// The finished sequence's cells stay for prefix reuse: its prompt and
	// its output but the last token, which was sampled and never decoded.
	if held != len(prompt)+maxTokens-1 {
		t.Errorf("cells held after the request: %d, want %d", held, len(prompt)+maxTokens-1)
	}
}
