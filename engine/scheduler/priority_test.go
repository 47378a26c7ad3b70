package scheduler

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qwen3-lora/qwen3-server/engine"
)

// hold starts a request that runs until ctx ends, and returns once it has
// produced a token (it is in a slot).
func hold(t *testing.T, e *Engine, ctx context.Context, p engine.Priority, wg *sync.WaitGroup) {
	t.Helper()
	started := make(chan struct{})
	var once sync.Once
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.Generate(ctx, &engine.Request{Prompt: "busy", IgnoreEOS: true, MaxTokens: 100000, Priority: p}, func(engine.Chunk) error {
			once.Do(func() { close(started) })
			return nil
		})
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the holding request never started")
	}
}

// background runs req until it ends or ctx does, counted in wg.
func background(e *Engine, ctx context.Context, wg *sync.WaitGroup, req engine.Request) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.Generate(ctx, &req, func(engine.Chunk) error { return nil })
	}()
}

// A slot that frees up goes to the interactive request queued after a
// batch line, not to the batch line that waited longer.
func TestInteractiveAdmittedBeforeLow(t *testing.T) {
	e := startEngine(t, func(o *Options) { o.Parallel = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	hold(t, e, ctx, engine.PriorityInteractive, &wg)

	var mu sync.Mutex
	var order []string
	run := func(name string, p engine.Priority) {
		defer wg.Done()
		_, err := e.Generate(context.Background(), &engine.Request{Prompt: name, IgnoreEOS: true, MaxTokens: 4, Priority: p}, func(engine.Chunk) error { return nil })
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		mu.Lock()
		order = append(order, name)
		mu.Unlock()
	}
	wg.Add(1)
	go run("low", engine.PriorityLow)
	waitFor(t, func() bool { return e.Stats().QueueDepth == 1 }, "the low request queued")
	wg.Add(1)
	go run("interactive", engine.PriorityInteractive)
	waitFor(t, func() bool { return e.Stats().QueueDepth == 2 }, "both queued")
	cancel() // frees the one slot
	wg.Wait()
	if len(order) != 2 || order[0] != "interactive" {
		t.Fatalf("finish order %v, want the interactive request first", order)
	}
}

// LowMax caps batch lines in slots even with slots free; interactive
// requests still take the free ones.
func TestLowMaxCapsLowPriority(t *testing.T) {
	e := startEngine(t, func(o *Options) { o.Parallel = 3; o.LowMax = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	hold(t, e, ctx, engine.PriorityLow, &wg)
	background(e, ctx, &wg, engine.Request{Prompt: "second low", IgnoreEOS: true, MaxTokens: 100000, Priority: engine.PriorityLow})
	waitFor(t, func() bool { s := e.Stats(); return s.BusySlots == 1 && s.QueueDepth == 1 }, "one low running, one low queued")
	time.Sleep(50 * time.Millisecond) // several steps: the second must stay queued
	if s := e.Stats(); s.BusySlots != 1 || s.QueueDepth != 1 {
		t.Fatalf("the cap let a second low-priority request in: %+v", s)
	}
	o := generate(e, context.Background(), greedy("interactive", 3))
	if o.err != nil || o.res.CompletionTokens != 3 {
		t.Fatalf("interactive request beside the capped batch lines: %+v %v", o.res, o.err)
	}
}

// The two classes have their own room in the queue: batch lines filling
// theirs do not make interactive requests overloaded.
func TestLowPriorityQueueRoomIsSeparate(t *testing.T) {
	e := startEngine(t, func(o *Options) { o.Parallel = 1; o.QueueSize = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	hold(t, e, ctx, engine.PriorityLow, &wg)
	background(e, ctx, &wg, engine.Request{Prompt: "queued low", MaxTokens: 1, Priority: engine.PriorityLow})
	waitFor(t, func() bool { return e.Stats().QueueDepth == 1 }, "a low request queued")
	_, err := e.Generate(ctx, &engine.Request{Prompt: "one low too many", MaxTokens: 1, Priority: engine.PriorityLow}, func(engine.Chunk) error { return nil })
	if !errors.Is(err, engine.ErrOverloaded) {
		t.Fatalf("a low request over the low room: want ErrOverloaded, got %v", err)
	}
	// The interactive request preempts the running low one rather than wait.
	o := generate(e, context.Background(), greedy("interactive", 1))
	if o.err != nil {
		t.Fatalf("interactive request beside a full low room: %v", o.err)
	}
}

// An interactive request that finds every slot taken by batch lines takes
// a slot from the one that generated least; that one ends with
// ErrPreempted (a batch line runs again later), the others go on.
func TestInteractivePreemptsLow(t *testing.T) {
	e := startEngine(t, func(o *Options) { o.Parallel = 2 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, 2)
	for range 2 {
		started := make(chan struct{})
		var once sync.Once
		go func() {
			_, err := e.Generate(ctx, &engine.Request{Prompt: "low", IgnoreEOS: true, MaxTokens: 100000, Priority: engine.PriorityLow}, func(engine.Chunk) error {
				once.Do(func() { close(started) })
				return nil
			})
			errs <- err
		}()
		<-started
	}
	o := generate(e, context.Background(), greedy("interactive", 3))
	if o.err != nil || o.res.CompletionTokens != 3 {
		t.Fatalf("interactive request with every slot on batch lines: %+v %v", o.res, o.err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, engine.ErrPreempted) {
			t.Fatalf("the preempted line: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no low-priority sequence was preempted")
	}
	if s := e.Stats(); s.BusySlots != 1 {
		t.Fatalf("the other batch line should still run: %+v", s)
	}
}

// An interactive prompt is prefilled alone while batch lines' prompts
// wait: a batch line whose prompt was well under way when a longer
// interactive prompt arrived still gets its first token after it. With
// prefill shared round robin, the line's shorter rest would finish first.
func TestInteractivePrefillGoesFirst(t *testing.T) {
	e := startEngine(t, func(o *Options) { o.Parallel, o.BatchSize, o.ContextSize = 2, 8, 4096 })
	var mu sync.Mutex
	var order []string
	first := func(name string) func(engine.Chunk) error {
		var once sync.Once
		return func(engine.Chunk) error {
			once.Do(func() { mu.Lock(); order = append(order, name); mu.Unlock() })
			return nil
		}
	}
	var wg sync.WaitGroup
	run := func(name, prompt string, p engine.Priority) {
		defer wg.Done()
		if _, err := e.Generate(context.Background(), &engine.Request{Prompt: prompt, IgnoreEOS: true, MaxTokens: 2, Priority: p}, first(name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	wg.Add(2)
	go run("low", strings.Repeat(" hello", 1000), engine.PriorityLow)
	waitFor(t, func() bool { return e.Stats().BusySlots == 1 }, "the batch line in a slot")
	go run("interactive", strings.Repeat(" world", 2500), engine.PriorityInteractive)
	wg.Wait()
	if len(order) != 2 || order[0] != "interactive" {
		t.Fatalf("first tokens in the order %v, want the interactive request's first", order)
	}
}
