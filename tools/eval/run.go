package eval

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Thinking is the thinking mode per item.
type Thinking string

const (
	// ThinkingAuto thinks on the items whose label has reasoning.
	ThinkingAuto Thinking = "auto"
	ThinkingOn   Thinking = "on"
	ThinkingOff  Thinking = "off"
)

// ParseThinking checks a --thinking value.
func ParseThinking(s string) (Thinking, error) {
	switch t := Thinking(s); t {
	case ThinkingAuto, ThinkingOn, ThinkingOff:
		return t, nil
	}
	return "", fmt.Errorf("--thinking %q: want auto, on or off", s)
}

func (t Thinking) on(it *Item) bool {
	switch t {
	case ThinkingOn:
		return true
	case ThinkingOff:
		return false
	}
	return it.LabelReasoning != ""
}

// Output is what a model answered to one item.
type Output struct {
	Reasoning, Answer                               string
	PromptTokens, CompletionTokens, ReasoningTokens int
	FinishReason                                    string
}

// Generator runs items: through the engine in this process (Engine) or a
// running server (HTTP). Implementations are safe for concurrent use.
type Generator interface {
	// Generate answers one item with the named model.
	Generate(ctx context.Context, model string, it *Item, thinking bool) (*Output, error)
}

// Options configure a run.
type Options struct {
	// Models are the names evaluated, each in its own folder under OutDir.
	Models []string
	OutDir string
	// Parallel is how many items are in flight at once (over all models);
	// 0: the generator's Concurrency, else 1.
	Parallel int
	Thinking Thinking
	Score    ScoreMode
	// Resume continues from the predictions files in OutDir.
	Resume bool
	// Progress receives the progress line (nil: none).
	Progress io.Writer
}

// ErrInterrupted is returned when the context ended the run early; the
// finished items are in the predictions files and --resume continues.
var ErrInterrupted = errors.New("interrupted")

// ItemError is an item that failed on a model.
type ItemError struct {
	Model string
	Item  *Item
	Err   error
}

func (e *ItemError) Error() string {
	return fmt.Sprintf("item %d (line %d) on %s: %v", e.Item.Index, e.Item.Line, e.Model, e.Err)
}
func (e *ItemError) Unwrap() error { return e.Err }

// Run evaluates every item on every model, interleaved (item by item, each
// on all models) so that one engine batches all models' sequences
// together, writes each model's predictions as they finish and, once all
// are done, its predict_results.json. When ctx ends first it returns
// ErrInterrupted (wrapped with the counts), keeping what finished.
func Run(ctx context.Context, gen Generator, items []*Item, o Options) ([]*ModelResult, error) {
	if len(o.Models) == 0 {
		return nil, errors.New("no models to evaluate")
	}
	if c, ok := gen.(interface{ Concurrency() int }); ok && o.Parallel == 0 {
		o.Parallel = c.Concurrency()
	}
	if o.Parallel < 1 {
		o.Parallel = 1
	}
	cps := make([]*checkpoint, len(o.Models))
	defer func() {
		for _, c := range cps {
			if c != nil {
				c.close()
			}
		}
	}()
	type job struct {
		model int
		item  *Item
	}
	var jobs []job
	for m, name := range o.Models {
		c, err := openCheckpoint(filepath.Join(o.OutDir, name), items, o.Resume)
		if err != nil {
			return nil, err
		}
		cps[m] = c
	}
	for _, it := range items {
		for m := range o.Models {
			if _, done := cps[m].done[it.Index]; !done {
				jobs = append(jobs, job{m, it})
			}
		}
	}
	total := len(items) * len(o.Models)
	prog := newProgress(o.Progress, total, total-len(jobs))
	start := time.Now()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for w := 0; w < min(o.Parallel, len(jobs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) || runCtx.Err() != nil {
					return
				}
				j := jobs[i]
				name := o.Models[j.model]
				out, err := gen.Generate(runCtx, name, j.item, o.Thinking.on(j.item))
				if err != nil {
					if runCtx.Err() == nil {
						fail(&ItemError{Model: name, Item: j.item, Err: err})
					}
					return
				}
				p := newPrediction(j.item, out.Reasoning, out.Answer, o.Score)
				p.Thinking = o.Thinking.on(j.item)
				p.PromptTokens, p.CompletionTokens, p.ReasoningTokens, p.FinishReason = out.PromptTokens, out.CompletionTokens, out.ReasoningTokens, out.FinishReason
				if err := cps[j.model].add(p); err != nil {
					fail(err)
					return
				}
				prog.add(out.CompletionTokens)
			}
		}()
	}
	wg.Wait()
	prog.stop()
	elapsed := time.Since(start).Seconds()
	if firstErr != nil {
		return nil, firstErr
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%w: %d of %d predictions are kept in %s; run again with --resume to continue", ErrInterrupted, prog.done.Load(), total, o.OutDir)
	}
	var results []*ModelResult
	for m, name := range o.Models {
		preds := cps[m].sorted()
		r, err := Score(name, preds, o.Score)
		if err != nil {
			return nil, err
		}
		r.RuntimeSec = elapsed
		if err := cps[m].rewrite(); err != nil { // item order, this run's score mode
			return nil, err
		}
		if err := WriteResults(filepath.Join(o.OutDir, name, ResultsFile), r); err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	return results, nil
}

// progress draws one line on stderr: items done, tokens/s, ETA. On a
// terminal it redraws in place every half second; elsewhere (a CI log) it
// prints a line every ten seconds.
type progress struct {
	w         io.Writer
	total     int
	startDone int
	done      atomic.Int64
	tokens    atomic.Int64
	start     time.Time
	stopCh    chan struct{}
	wg        sync.WaitGroup
	tty       bool
}

func newProgress(w io.Writer, total, done int) *progress {
	p := &progress{w: w, total: total, startDone: done, start: time.Now(), stopCh: make(chan struct{})}
	p.done.Store(int64(done))
	if w == nil {
		return p
	}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	every := 10 * time.Second
	if p.tty {
		every = 500 * time.Millisecond
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw(false)
			case <-p.stopCh:
				p.draw(true)
				return
			}
		}
	}()
	return p
}

func (p *progress) add(tokens int) {
	p.done.Add(1)
	p.tokens.Add(int64(tokens))
}

func (p *progress) stop() {
	if p.w == nil {
		return
	}
	close(p.stopCh)
	p.wg.Wait()
}

// Line is the progress text.
func (p *progress) line() string {
	done := int(p.done.Load())
	el := time.Since(p.start)
	bar := [20]byte{}
	for i := range bar {
		bar[i] = '.'
		if p.total > 0 && i < 20*done/p.total {
			bar[i] = '#'
		}
	}
	tps := float64(p.tokens.Load()) / max(el.Seconds(), 1e-9)
	eta := "--"
	if now := done - p.startDone; now > 0 {
		eta = (time.Duration(float64(el) / float64(now) * float64(p.total-done))).Round(time.Second).String()
	}
	return fmt.Sprintf("[%s] %d/%d items  %.1f tokens/s  ETA %s", bar[:], done, p.total, tps, eta)
}

func (p *progress) draw(final bool) {
	l := p.line()
	switch {
	case p.tty && final:
		fmt.Fprintf(p.w, "\r\033[K%s\n", l)
	case p.tty:
		fmt.Fprintf(p.w, "\r\033[K%s", l)
	default:
		fmt.Fprintln(p.w, l)
	}
}
