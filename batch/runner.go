package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Executor runs one batch line: endpoint is the batch's (/v1/chat/completions
// or /v1/completions), body the line's request body. It returns the HTTP
// status and body the endpoint would have answered (any status: a 400 is a
// result too, written to the error file); err only when there is no answer
// (wrap ErrRetryLater to have the line run again later). It must return
// soon after ctx is cancelled (the batch was cancelled or expired, or the
// runner stops): an error returned then leaves the line pending, to run
// after a restart, while an answer returned then is still recorded. A
// panic is recovered and recorded as the line's error.
type Executor interface {
	Execute(ctx context.Context, endpoint string, body json.RawMessage) (statusCode int, respBody json.RawMessage, err error)
}

type requestIDKey struct{}

// RequestID is the request_id the output line will carry for the line an
// Executor is running (for its logs); "" outside a batch line.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Start starts the runner: batches left validating, in progress,
// finalizing or cancelling by an earlier process resume (lines without a
// result run; none with one runs again). check may be nil.
func (s *Store) Start(exec Executor, check ModelCheck) error {
	if exec == nil {
		return errors.New("batch: Start needs an Executor")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.run != nil {
		return errors.New("batch: the runner was already started")
	}
	base, cancel := context.WithCancel(context.Background())
	r := &runner{s: s, exec: exec, check: check, base: base, cancel: cancel,
		quit: make(chan struct{}), done: make(chan struct{}), active: map[string]*active{}}
	s.run = r
	go r.loop()
	s.log.Info("batch runner started", zap.Int("max_concurrency", s.cfg.MaxConcurrency))
	return nil
}

// Stop stops the runner: no new line starts, and Stop waits for the running
// ones until ctx is done, then cancels them (they stay pending and run
// after a restart) and returns ctx's error. The store stays open for the
// API; the runner cannot be started again (Close, Open and Start).
func (s *Store) Stop(ctx context.Context) error {
	s.mu.Lock()
	r := s.run
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.stop(ctx)
}

// runner owns the in-memory side of running batches. One goroutine, loop,
// decides everything (validate, dispatch, finalize); workers only execute
// a line, record its result and wake the loop.
type runner struct {
	s     *Store
	exec  Executor
	check ModelCheck

	base     context.Context // parent of every line's context; cancel ends them all
	cancel   context.CancelFunc
	quit     chan struct{}
	done     chan struct{} // closed when loop has returned
	stopOnce sync.Once
	wg       sync.WaitGroup // workers and validations

	mu     sync.Mutex
	active map[string]*active
	// inflight counts the lines executing, over all batches: what
	// MaxConcurrency caps. A line leaves it as soon as its answer is back,
	// before its result is written, and stays in its batch's active.lines
	// until the write has committed.
	inflight    int
	pausedUntil time.Time // after ErrRetryLater or a failed write
}

// active is one open batch's running state.
type active struct {
	ctx        context.Context // cancelled when the batch is cancelled or expires
	cancel     context.CancelFunc
	input      *os.File     // the batch's input copy, opened at the first dispatch
	lines      map[int]bool // line numbers in flight
	validating bool
}

func (r *runner) stop(ctx context.Context) error {
	r.stopOnce.Do(func() { close(r.quit) })
	<-r.done
	waited := make(chan struct{})
	go func() { r.wg.Wait(); close(waited) }()
	var err error
	select {
	case <-waited:
	case <-ctx.Done():
		r.cancel()
		<-waited
		err = ctx.Err()
	}
	r.cancel()
	r.mu.Lock()
	for id, a := range r.active {
		r.forgetLocked(id, a)
	}
	r.mu.Unlock()
	return err
}

func (r *runner) loop() {
	defer close(r.done)
	t := time.NewTicker(r.s.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-r.quit:
			return
		default:
		}
		r.tick()
		select {
		case <-r.quit:
			return
		case <-r.s.wake:
		case <-t.C:
		}
	}
}

// tick takes every open batch one step further.
func (r *runner) tick() {
	ctx := context.Background()
	open, err := r.s.openBatches(ctx)
	if err != nil {
		r.s.log.Error("listing open batches", zap.Error(err))
		return
	}
	now := r.s.unix()
	seen := map[string]bool{}
	for _, b := range open {
		seen[b.ID] = true
		r.step(ctx, b, now)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, a := range r.active {
		if !seen[id] && !a.validating && len(a.lines) == 0 {
			r.forgetLocked(id, a)
		}
	}
}

func (r *runner) step(ctx context.Context, b *batchRow, now int64) {
	a := r.activeFor(b.ID)
	expired := (b.Status == StatusValidating || b.Status == StatusInProgress) && now >= *b.ExpiresAt
	stopping := expired || b.Status == StatusCancelling
	if stopping {
		a.cancel()
	}
	r.mu.Lock()
	busy := a.validating || len(a.lines) > 0
	r.mu.Unlock()
	counts := b.RequestCounts
	switch {
	case stopping && busy:
		// finalized once its running lines have returned
	case b.Status == StatusCancelling:
		r.finish(ctx, b, StatusCancelled)
	case expired:
		r.finish(ctx, b, StatusExpired)
	case b.Status == StatusValidating:
		r.validate(b, a)
	case b.Status == StatusFinalizing:
		r.finish(ctx, b, StatusCompleted)
	case b.Status == StatusInProgress && !busy && counts.Completed+counts.Failed >= counts.Total:
		ok, err := r.s.markFinalizing(ctx, b.ID)
		if err != nil {
			r.s.log.Error("finalizing a batch", zap.String("batch", b.ID), zap.Error(err))
			return
		}
		if ok {
			b.Status = StatusFinalizing
			r.finish(ctx, b, StatusCompleted)
		}
	case b.Status == StatusInProgress:
		r.dispatch(ctx, b, a)
	}
}

func (r *runner) activeFor(id string) *active {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.active[id]
	if a == nil {
		ctx, cancel := context.WithCancel(r.base)
		a = &active{ctx: ctx, cancel: cancel, lines: map[int]bool{}}
		r.active[id] = a
	}
	return a
}

// forgetLocked drops a batch that has nothing running; r.mu is held.
func (r *runner) forgetLocked(id string, a *active) {
	a.cancel()
	if a.input != nil {
		a.input.Close()
	}
	delete(r.active, id)
}

func (r *runner) finish(ctx context.Context, b *batchRow, to Status) {
	if err := r.s.finalize(ctx, b, to); err != nil {
		r.s.log.Error("finalizing a batch", zap.String("batch", b.ID), zap.String("to", string(to)), zap.Error(err))
		return
	}
	r.mu.Lock()
	if a := r.active[b.ID]; a != nil {
		r.forgetLocked(b.ID, a)
	}
	r.mu.Unlock()
}

func (r *runner) validate(b *batchRow, a *active) {
	r.mu.Lock()
	if a.validating {
		r.mu.Unlock()
		return
	}
	a.validating = true
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := r.s.validate(a.ctx, b, r.check); err != nil && a.ctx.Err() == nil {
			// Left validating: the next tick tries again.
			r.s.log.Error("validating a batch", zap.String("batch", b.ID), zap.Error(err))
		}
		r.mu.Lock()
		a.validating = false
		r.mu.Unlock()
		r.s.poke()
	}()
}

func (r *runner) pause() {
	r.mu.Lock()
	r.pausedUntil = time.Now().Add(r.s.cfg.PollInterval)
	r.mu.Unlock()
}

// dispatch starts pending lines of b in input order, while the global cap
// allows; batches are served oldest first. r.mu is held from the query of
// pending lines to the last start: a worker leaves a.lines only after its
// result has committed, so a line is either still in a.lines or already
// done in what the query read, and never starts twice.
func (r *runner) dispatch(ctx context.Context, b *batchRow, a *active) {
	r.mu.Lock()
	defer r.mu.Unlock()
	free := r.s.cfg.MaxConcurrency - r.inflight
	if free <= 0 || time.Now().Before(r.pausedUntil) {
		return
	}
	if a.input == nil {
		f, err := os.Open(r.s.inputPath(b.ID))
		if err != nil {
			// Only tampering with the data folder gets here; the batch
			// expires at the end of its window.
			r.s.log.Error("opening a batch's input", zap.String("batch", b.ID), zap.Error(err))
			return
		}
		a.input = f
	}
	// The lines in flight are still pending in the database: ask for enough
	// to skip them.
	pending, err := r.s.pendingLines(ctx, b.ID, len(a.lines)+free)
	if err != nil {
		r.s.log.Error("reading pending lines", zap.String("batch", b.ID), zap.Error(err))
		return
	}
	for _, l := range pending {
		if free == 0 {
			break
		}
		if a.lines[l.no] {
			continue
		}
		a.lines[l.no] = true
		r.inflight++
		free--
		r.wg.Add(1)
		go r.work(b, a, l)
	}
}

func (r *runner) work(b *batchRow, a *active, l lineRef) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		delete(a.lines, l.no)
		r.mu.Unlock()
		r.s.poke()
	}()
	res, ok := r.execute(a, b.Endpoint, l)
	// The engine's slot is free now: the next line is dispatched while this
	// one's result is written (an fsync), not after, so a line in flight
	// is not a slot left idle for the write and the wake-up. The line stays
	// in a.lines meanwhile, so no dispatch picks it again.
	r.mu.Lock()
	r.inflight--
	r.mu.Unlock()
	r.s.poke()
	if !ok {
		return
	}
	if _, err := r.s.recordLine(b.ID, l.no, res); err != nil {
		// The line stays pending and runs again; pausing keeps a failing
		// disk from turning that into a busy loop.
		r.s.log.Error("recording a line's result", zap.String("batch", b.ID), zap.Int("line", l.no), zap.Error(err))
		r.pause()
	}
}

// lineResult is what a line's run produced: an answer (status, body) or an
// error (code, message).
type lineResult struct {
	requestID string
	status    int
	body      json.RawMessage
	errCode   string
	errMsg    string
}

func (res lineResult) ok() bool { return res.errCode == "" && res.status >= 200 && res.status < 300 }

// execute runs line l; ok is false when there is nothing to record (the
// line was cancelled, or is to be retried).
func (r *runner) execute(a *active, endpoint string, l lineRef) (lineResult, bool) {
	raw := make([]byte, l.len)
	if _, err := a.input.ReadAt(raw, l.off); err != nil {
		return lineResult{errCode: "server_error", errMsg: fmt.Sprintf("reading the line: %v", err)}, true
	}
	var in InputLine
	if err := json.Unmarshal(raw, &in); err != nil { // validated; the input copy changed under us
		return lineResult{errCode: "server_error", errMsg: fmt.Sprintf("reading the line: %v", err)}, true
	}
	reqID := newID("req_")
	ctx := context.WithValue(a.ctx, requestIDKey{}, reqID)
	code, body, err := r.safeExecute(ctx, endpoint, in.Body)
	switch {
	case err != nil && ctx.Err() != nil:
		return lineResult{}, false
	case errors.Is(err, ErrRetryLater):
		r.pause()
		return lineResult{}, false
	case err != nil:
		return lineResult{errCode: "server_error", errMsg: err.Error()}, true
	case !json.Valid(body):
		return lineResult{errCode: "server_error", errMsg: fmt.Sprintf("the endpoint's answer (status %d) is not JSON", code)}, true
	}
	return lineResult{requestID: reqID, status: code, body: body}, true
}

// safeExecute turns an Executor's panic into the line's error, so that one
// bad request cannot take the server down with it.
func (r *runner) safeExecute(ctx context.Context, endpoint string, body json.RawMessage) (code int, resp json.RawMessage, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.s.log.Error("the executor panicked", zap.Any("panic", p), zap.Stack("stack"))
			code, resp, err = 0, nil, fmt.Errorf("internal error: %v", p)
		}
	}()
	return r.exec.Execute(ctx, endpoint, body)
}
