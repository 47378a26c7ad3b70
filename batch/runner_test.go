package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func (f *fakeExec) cancels() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cancelled
}

// TestBatchCompletes follows one batch through validating, in_progress,
// finalizing and completed, with a 200, a 400, an executor failure and an
// executor panic.
func TestBatchCompletes(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	chat := EndpointChatCompletions
	b := createBatch(t, s, "", []string{reqLine("a", chat, "ok-a"), reqLine("b", chat, "bad-b"), reqLine("c", chat, "err-c"),
		reqLine("d", chat, "ok-d"), reqLine("e", chat, "panic-e")})
	if b.Status != StatusValidating || b.RequestCounts != (RequestCounts{}) || b.InProgressAt != nil {
		t.Fatalf("a new batch: %+v", b)
	}
	fake := newFake()
	fake.hold = make(chan struct{})
	var atFinalizing *Batch
	s.beforeFinalCommit = func(id string) error {
		var err error
		atFinalizing, err = s.GetBatch(ctx, "", id)
		return err
	}
	if err := s.Start(fake, nil); err != nil {
		t.Fatal(err)
	}
	running := waitStatus(t, s, "", b.ID, StatusInProgress)
	if running.InProgressAt == nil || running.RequestCounts.Total != 5 || running.FinalizingAt != nil {
		t.Fatalf("in progress: %+v", running)
	}
	checkBatchShape(t, running)
	close(fake.hold)
	done := waitStatus(t, s, "", b.ID, StatusCompleted)
	if atFinalizing == nil || atFinalizing.Status != StatusFinalizing || atFinalizing.FinalizingAt == nil {
		t.Fatalf("while finalizing: %+v", atFinalizing)
	}
	if done.RequestCounts != (RequestCounts{Total: 5, Completed: 2, Failed: 3}) || done.CompletedAt == nil ||
		done.FinalizingAt == nil || done.InProgressAt == nil || done.FailedAt != nil || done.ExpiredAt != nil || done.CancelledAt != nil {
		t.Fatalf("completed: %+v", done)
	}
	checkBatchShape(t, done)

	out := outputLines(t, s, "", done.OutputFileID)
	if got := customIDs(out); !slices.Equal(got, []string{"a", "d"}) {
		t.Fatalf("output custom_ids %v", got)
	}
	for _, l := range out {
		var body struct {
			Echo      string `json:"echo"`
			RequestID string `json:"request_id"`
		}
		if l.Response == nil || json.Unmarshal(l.Response.Body, &body) != nil {
			t.Fatalf("output line %+v", l)
		}
		if !strings.HasPrefix(l.ID, "batch_req_") || l.Error != nil || l.Response.StatusCode != 200 ||
			l.Response.RequestID == "" || body.RequestID != l.Response.RequestID || body.Echo != "ok-"+l.CustomID {
			t.Errorf("output line %+v (body %s)", l, l.Response.Body)
		}
	}
	errs := outputLines(t, s, "", done.ErrorFileID)
	if got := customIDs(errs); !slices.Equal(got, []string{"b", "c", "e"}) {
		t.Fatalf("error file custom_ids %v", got)
	}
	if r := errs[0].Response; r == nil || r.StatusCode != 400 || errs[0].Error != nil || !strings.Contains(string(r.Body), "bad request") {
		t.Errorf("the 400 line: %+v", errs[0])
	}
	if e := errs[1].Error; errs[1].Response != nil || e == nil || e.Code != "server_error" || e.Message != "the engine failed" {
		t.Errorf("the failed line: %+v", errs[1])
	}
	if e := errs[2].Error; errs[2].Response != nil || e == nil || e.Code != "server_error" || !strings.Contains(e.Message, "the executor broke") {
		t.Errorf("the line whose executor panicked: %+v", errs[2])
	}
	// The lines are OpenAI's: response and error both present, one null.
	_, r, _ := s.FileContent(ctx, "", *done.OutputFileID)
	raw, _ := io.ReadAll(r)
	r.Close()
	var first map[string]json.RawMessage
	json.Unmarshal([]byte(strings.SplitN(string(raw), "\n", 2)[0]), &first)
	if len(first) != 4 || string(first["error"]) != "null" || first["response"] == nil || first["custom_id"] == nil || first["id"] == nil {
		t.Errorf("output line keys: %s", raw)
	}
	of, err := s.GetFile(ctx, "", *done.OutputFileID)
	if err != nil || of.Purpose != PurposeBatchOutput || of.Filename != b.ID+"_output.jsonl" || of.Bytes != int64(len(raw)) {
		t.Fatalf("output file %+v, %v (content %d bytes)", of, err, len(raw))
	}
	checkFileShape(t, of)
	for _, tag := range []string{"ok-a", "bad-b", "ok-d"} {
		if n := fake.runs(tag); n != 1 {
			t.Errorf("%s ran %d times", tag, n)
		}
	}
	// The batch's input link is gone with the batch.
	if _, err := os.Stat(s.inputPath(b.ID)); !os.IsNotExist(err) {
		t.Errorf("input link after completion: %v", err)
	}
}

// TestValidationFailures: every kind of bad line fails the batch, each
// reported with its 1-based line number (blank lines count as lines).
func TestValidationFailures(t *testing.T) {
	s := openStore(t, "")
	chat := EndpointChatCompletions
	asked := map[string]int{}
	var mu sync.Mutex
	check := func(model string) error {
		mu.Lock()
		asked[model]++
		mu.Unlock()
		if model == "base" || model == "my-adapter" {
			return nil
		}
		return fmt.Errorf("the model %q does not exist", model)
	}
	obj := func(m map[string]any) string { b, _ := json.Marshal(m); return string(b) }
	body := map[string]any{"model": "base"}
	lines := []string{
		reqLine("one", chat, "x"),                // 1: fine
		`{"custom_id": "two", "method": "POST",`, // 2: cut short
		"",                                       // 3: blank, not a request
		reqLine("one", chat, "x"),                // 4: duplicate of line 1
		obj(map[string]any{"custom_id": "five", "method": "GET", "url": chat, "body": body}),
		obj(map[string]any{"custom_id": "six", "method": "POST", "url": EndpointCompletions, "body": body}),
		obj(map[string]any{"custom_id": "seven", "method": "POST", "url": chat}),
		obj(map[string]any{"custom_id": "eight", "method": "POST", "url": chat, "body": []int{1}}),
		obj(map[string]any{"custom_id": "nine", "method": "POST", "url": chat, "body": map[string]any{"messages": []any{}}}),
		obj(map[string]any{"custom_id": "ten", "method": "POST", "url": chat, "body": map[string]any{"model": "nope"}}),
		obj(map[string]any{"method": "POST", "url": chat, "body": body}),
		`[1, 2]`,
		obj(map[string]any{"custom_id": "thirteen", "method": "POST", "url": chat, "body": map[string]any{"model": "my-adapter"}}),
		obj(map[string]any{"custom_id": 14, "method": "POST", "url": chat, "body": body}),
	}
	b := createBatch(t, s, "", lines)
	fake := newFake()
	if err := s.Start(fake, check); err != nil {
		t.Fatal(err)
	}
	failed := waitStatus(t, s, "", b.ID, StatusFailed)
	type want struct {
		line        int
		code, param string
	}
	wants := []want{
		{2, CodeInvalidJSONLine, ""},
		{4, CodeDuplicateCustomID, "custom_id"},
		{5, CodeInvalidMethod, "method"},
		{6, CodeInvalidURL, "url"},
		{7, CodeMissingParameter, "body"},
		{8, CodeMissingParameter, "body"},
		{9, CodeMissingParameter, "body.model"},
		{10, CodeModelNotFound, "body.model"},
		{11, CodeMissingParameter, "custom_id"},
		{12, CodeInvalidJSONLine, ""},
		{14, CodeMissingParameter, "custom_id"},
	}
	if failed.Errors == nil || failed.Errors.Object != "list" || len(failed.Errors.Data) != len(wants) {
		js, _ := json.Marshal(failed.Errors)
		t.Fatalf("errors: %s", js)
	}
	for i, w := range wants {
		e := failed.Errors.Data[i]
		param := ""
		if e.Param != nil {
			param = *e.Param
		}
		if e.Line == nil || *e.Line != w.line || e.Code != w.code || param != w.param || e.Message == "" {
			t.Errorf("error %d: %+v (line %v), want %+v", i, e, e.Line, w)
		}
	}
	if msg := failed.Errors.Data[7].Message; !strings.Contains(msg, `"nope" does not exist`) {
		t.Errorf("the unknown model's message %q is not ModelCheck's", msg)
	}
	if msg := failed.Errors.Data[1].Message; !strings.Contains(msg, "line 1") {
		t.Errorf("the duplicate's message %q does not name the first line", msg)
	}
	if failed.FailedAt == nil || failed.InProgressAt != nil || failed.RequestCounts != (RequestCounts{}) || failed.OutputFileID != nil {
		t.Fatalf("failed batch: %+v", failed)
	}
	checkBatchShape(t, failed)
	if fake.totalRuns() != 0 {
		t.Fatal("a failed batch ran lines")
	}
	mu.Lock()
	defer mu.Unlock()
	if asked["base"] != 1 || asked["my-adapter"] != 1 || asked["nope"] != 1 {
		t.Fatalf("ModelCheck asked %v; want each model once", asked)
	}
}

func TestValidationOfEmptyAndVeryBadFiles(t *testing.T) {
	s := openStore(t, "")
	empty := createBatch(t, s, "", []string{"", "  ", ""})
	var bad []string
	for i := 0; i < maxReportedErrors+2; i++ {
		bad = append(bad, "x")
	}
	veryBad := createBatch(t, s, "", bad)
	if err := s.Start(newFake(), nil); err != nil {
		t.Fatal(err)
	}
	e := waitStatus(t, s, "", empty.ID, StatusFailed).Errors
	if e == nil || len(e.Data) != 1 || e.Data[0].Code != CodeEmptyFile || e.Data[0].Line != nil {
		t.Fatalf("empty file: %+v", e)
	}
	e = waitStatus(t, s, "", veryBad.ID, StatusFailed).Errors
	if len(e.Data) != maxReportedErrors+1 || *e.Data[maxReportedErrors-1].Line != maxReportedErrors ||
		e.Data[maxReportedErrors].Code != CodeTooManyErrors || !strings.HasPrefix(e.Data[maxReportedErrors].Message, "2 more") {
		t.Fatalf("%d errors, the last %+v", len(e.Data), e.Data[len(e.Data)-1])
	}
}

// TestDeletingTheInputDoesNotStopTheBatch: a batch keeps its own link.
func TestDeletingTheInputDoesNotStopTheBatch(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	b := createBatch(t, s, "", chatLines(3))
	if _, err := s.DeleteFile(ctx, "", b.InputFileID); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(newFake(), nil); err != nil {
		t.Fatal(err)
	}
	done := waitStatus(t, s, "", b.ID, StatusCompleted)
	if got := customIDs(outputLines(t, s, "", done.OutputFileID)); !slices.Equal(got, []string{"c-1", "c-2", "c-3"}) {
		t.Fatalf("output %v", got)
	}
}

func TestCancelKeepsPartialResults(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.MaxConcurrency = 2
	s := openStoreConfig(t, cfg)
	b := createBatch(t, s, "", chatLines(6))
	fake := newFake()
	fake.hold = make(chan struct{}) // never closed: only cancellation ends c-3 and c-4
	fake.blocked = func(tag string) bool { return tag != "c-1" && tag != "c-2" }
	fake.started = make(chan string, 10)
	fake.onCancel = make(chan struct{})
	if err := s.Start(fake, nil); err != nil {
		t.Fatal(err)
	}
	for seen := map[string]bool{}; !seen["c-3"] || !seen["c-4"]; {
		seen[<-fake.started] = true
	}
	waitFor(t, s, "", b.ID, "2 completed", func(b *Batch) bool { return b.RequestCounts.Completed == 2 })
	c, err := s.CancelBatch(ctx, "", b.ID)
	if err != nil || c.Status != StatusCancelling || c.CancellingAt == nil {
		t.Fatalf("CancelBatch: %+v, %v", c, err)
	}
	// The running lines have seen the cancel and are held returning: the
	// batch stays cancelling until they have.
	for fake.cancels() < 2 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(5 * cfg.PollInterval)
	if again, err := s.CancelBatch(ctx, "", b.ID); err != nil || again.Status != StatusCancelling {
		t.Fatalf("cancelling a cancelling batch: %+v, %v", again, err)
	}
	close(fake.onCancel)
	done := waitStatus(t, s, "", b.ID, StatusCancelled)
	if done.CancelledAt == nil || done.CompletedAt != nil || done.RequestCounts != (RequestCounts{Total: 6, Completed: 2}) || done.ErrorFileID != nil {
		t.Fatalf("cancelled: %+v", done)
	}
	checkBatchShape(t, done)
	if got := customIDs(outputLines(t, s, "", done.OutputFileID)); !slices.Equal(got, []string{"c-1", "c-2"}) {
		t.Fatalf("partial output %v", got)
	}
	select {
	case tag := <-fake.started:
		t.Fatalf("%s started after the cancel", tag)
	default:
	}
	if _, err := s.CancelBatch(ctx, "", b.ID); kindOf(err) != KindConflict {
		t.Fatalf("cancelling a cancelled batch: %v", err)
	}
}

func TestCancelWhileValidating(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	b := createBatch(t, s, "", chatLines(3))
	inCheck, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	check := func(string) error {
		once.Do(func() { close(inCheck) })
		<-release
		return nil
	}
	fake := newFake()
	if err := s.Start(fake, check); err != nil {
		t.Fatal(err)
	}
	<-inCheck
	if c, err := s.CancelBatch(ctx, "", b.ID); err != nil || c.Status != StatusCancelling {
		t.Fatalf("CancelBatch: %+v, %v", c, err)
	}
	close(release)
	done := waitStatus(t, s, "", b.ID, StatusCancelled)
	if done.InProgressAt != nil || done.RequestCounts != (RequestCounts{}) || done.OutputFileID != nil || done.ErrorFileID != nil || fake.totalRuns() != 0 {
		t.Fatalf("cancelled in validation: %+v, %d runs", done, fake.totalRuns())
	}
	var lines int
	s.db.QueryRow(`SELECT count(*) FROM lines WHERE batch_id = ?`, b.ID).Scan(&lines)
	if lines != 0 {
		t.Fatalf("%d line rows of a batch cancelled in validation", lines)
	}
}

func TestCancelOfAFinishedBatch(t *testing.T) {
	s := openStore(t, "")
	if err := s.Start(newFake(), nil); err != nil {
		t.Fatal(err)
	}
	b := waitStatus(t, s, "", createBatch(t, s, "", chatLines(1)).ID, StatusCompleted)
	if _, err := s.CancelBatch(context.Background(), "", b.ID); kindOf(err) != KindConflict {
		t.Fatalf("cancelling a completed batch: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxConcurrency = 1
	s := openStoreConfig(t, cfg, WithCompletionWindow(2*time.Second))
	b := createBatch(t, s, "", chatLines(4))
	if *b.ExpiresAt != b.CreatedAt+2 || b.CompletionWindow != "24h" {
		t.Fatalf("created: expires_at %d, created_at %d, window %q", *b.ExpiresAt, b.CreatedAt, b.CompletionWindow)
	}
	fake := newFake()
	fake.hold = make(chan struct{}) // never closed: c-2 runs until the window ends
	fake.blocked = func(tag string) bool { return tag != "c-1" }
	if err := s.Start(fake, nil); err != nil {
		t.Fatal(err)
	}
	done := waitStatus(t, s, "", b.ID, StatusExpired)
	if done.ExpiredAt == nil || *done.ExpiredAt < *done.ExpiresAt || done.CompletedAt != nil ||
		done.RequestCounts != (RequestCounts{Total: 4, Completed: 1, Failed: 3}) {
		t.Fatalf("expired: %+v", done)
	}
	checkBatchShape(t, done)
	if fake.cancels() != 1 {
		t.Fatalf("%d running lines saw the expiry, want 1", fake.cancels())
	}
	if got := customIDs(outputLines(t, s, "", done.OutputFileID)); !slices.Equal(got, []string{"c-1"}) {
		t.Fatalf("output %v", got)
	}
	errs := outputLines(t, s, "", done.ErrorFileID)
	if got := customIDs(errs); !slices.Equal(got, []string{"c-2", "c-3", "c-4"}) {
		t.Fatalf("error file %v", got)
	}
	for _, l := range errs {
		if l.Response != nil || l.Error == nil || l.Error.Code != "batch_expired" || !strings.HasPrefix(l.ID, "batch_req_") {
			t.Errorf("expired line %+v", l)
		}
	}
}

func TestConcurrencyCapHolds(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxConcurrency = 3
	s := openStoreConfig(t, cfg)
	a := createBatch(t, s, "", chatLines(8))
	b := createBatch(t, s, "", chatLines(8))
	fake := newFake()
	fake.delay = 20 * time.Millisecond
	if err := s.Start(fake, nil); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, "", a.ID, StatusCompleted)
	waitStatus(t, s, "", b.ID, StatusCompleted)
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.maxSeen != 3 {
		t.Fatalf("at most %d lines ran at once, want the cap of 3 reached and held", fake.maxSeen)
	}
	if n := fake.calls["c-1"]; n != 2 {
		t.Fatalf("c-1 ran %d times over two batches", n)
	}
}

func TestRetryLaterKeepsTheLinePending(t *testing.T) {
	s := openStore(t, "")
	fake := newFake()
	var mu sync.Mutex
	attempts := 0
	fake.before = func(tag string) error {
		if tag != "c-2" {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if attempts == 1 {
			return fmt.Errorf("%w: the queue is full", ErrRetryLater)
		}
		return nil
	}
	b := createBatch(t, s, "", chatLines(3))
	if err := s.Start(fake, nil); err != nil {
		t.Fatal(err)
	}
	done := waitStatus(t, s, "", b.ID, StatusCompleted)
	if done.RequestCounts != (RequestCounts{Total: 3, Completed: 3}) || done.ErrorFileID != nil || attempts != 2 {
		t.Fatalf("completed %+v after %d attempts of c-2", done.RequestCounts, attempts)
	}
	if got := customIDs(outputLines(t, s, "", done.OutputFileID)); !slices.Equal(got, []string{"c-1", "c-2", "c-3"}) {
		t.Fatalf("output %v", got)
	}
}

// TestStopIsGracefulThenResumes: Stop waits for running lines, starts no
// new one; a later Open and Start runs only the lines without a result.
func TestStopIsGracefulThenResumes(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.MaxConcurrency = 2
	s, err := Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := createBatch(t, s, "", chatLines(5))
	fake := newFake()
	fake.hold = make(chan struct{})
	fake.started = make(chan string, 10)
	if err := s.Start(fake, nil); err != nil {
		t.Fatal(err)
	}
	<-fake.started
	<-fake.started
	stopped := make(chan error)
	go func() { stopped <- s.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while lines ran", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(fake.hold)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	mid, _ := s.GetBatch(context.Background(), "", b.ID)
	if mid.Status != StatusInProgress || mid.RequestCounts.Completed != 2 || len(fake.started) != 0 {
		t.Fatalf("after Stop: %+v, %d lines started after Stop", mid, len(fake.started))
	}
	s.Close()

	s = openStore(t, dir)
	fresh := newFake()
	if err := s.Start(fresh, nil); err != nil {
		t.Fatal(err)
	}
	done := waitStatus(t, s, "", b.ID, StatusCompleted)
	if got := customIDs(outputLines(t, s, "", done.OutputFileID)); !slices.Equal(got, []string{"c-1", "c-2", "c-3", "c-4", "c-5"}) {
		t.Fatalf("output %v", got)
	}
	if fresh.totalRuns() != 3 || fresh.runs("c-1") != 0 || fresh.runs("c-2") != 0 {
		t.Fatalf("after the restart %d lines ran (c-1 %d, c-2 %d), want only the 3 without a result", fresh.totalRuns(), fresh.runs("c-1"), fresh.runs("c-2"))
	}
}

func TestStopPastItsDeadlineCancelsLines(t *testing.T) {
	s := openStore(t, "")
	b := createBatch(t, s, "", chatLines(2))
	fake := newFake()
	fake.hold = make(chan struct{}) // never closed
	fake.started = make(chan string, 10)
	if err := s.Start(fake, nil); err != nil {
		t.Fatal(err)
	}
	<-fake.started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop: %v", err)
	}
	mid, _ := s.GetBatch(context.Background(), "", b.ID)
	if fake.cancels() == 0 || mid.RequestCounts.Completed+mid.RequestCounts.Failed != 0 {
		t.Fatalf("after a hard stop: %d cancelled, counts %+v", fake.cancels(), mid.RequestCounts)
	}
	if err := s.Start(fake, nil); err == nil {
		t.Fatal("a second Start succeeded")
	}
}

// TestFinalizationIsRedoneAfterACrash: a crash after the output files are
// written and before the commit, then a restart, gives the same files once;
// another restart after completion changes nothing.
func TestFinalizationIsRedoneAfterACrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(testConfig(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	chat := EndpointChatCompletions
	b := createBatch(t, s, "", []string{reqLine("a", chat, "ok-a"), reqLine("b", chat, "bad-b")})
	crashed := make(chan struct{})
	var once sync.Once
	s.beforeFinalCommit = func(string) error {
		once.Do(func() { close(crashed) })
		return errors.New("simulated crash")
	}
	if err := s.Start(newFake(), nil); err != nil {
		t.Fatal(err)
	}
	<-crashed
	s.Close()
	row := func(s *Store) *batchRow {
		r, err := s.batchRow(ctx, "", b.ID)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	s = openStore(t, dir)
	before := row(s)
	if before.Status != StatusFinalizing {
		t.Fatalf("after the crash: %s", before.Status)
	}
	if err := s.Start(newFake(), nil); err != nil {
		t.Fatal(err)
	}
	done := waitStatus(t, s, "", b.ID, StatusCompleted)
	if *done.OutputFileID != before.outputPlan || *done.ErrorFileID != before.errorPlan {
		t.Fatalf("output files %s/%s, want the reserved %s/%s", *done.OutputFileID, *done.ErrorFileID, before.outputPlan, before.errorPlan)
	}
	read := func(s *Store) (string, []string) {
		l, err := s.ListFiles(ctx, "", ListParams{Purpose: PurposeBatchOutput})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, f := range l.Data {
			ids = append(ids, f.ID)
		}
		slices.Sort(ids)
		var content []string
		for _, id := range ids {
			data, err := os.ReadFile(filepath.Join(dir, "files", id))
			if err != nil {
				t.Fatal(err)
			}
			content = append(content, string(data))
		}
		return strings.Join(content, "|"), ids
	}
	content, ids := read(s)
	if len(ids) != 2 || strings.Count(content, `"custom_id":"a"`) != 1 || strings.Count(content, `"custom_id":"b"`) != 1 {
		t.Fatalf("output files %v: %s", ids, content)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "files"))
	if len(entries) != 3 { // the input and the two outputs
		t.Fatalf("%d files on disk, want 3", len(entries))
	}
	s.Close()

	s = openStore(t, dir)
	fake := newFake()
	if err := s.Start(fake, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * testConfig(dir).PollInterval)
	again := row(s)
	content2, ids2 := read(s)
	if again.Status != StatusCompleted || *again.CompletedAt != *done.CompletedAt || content2 != content || !slices.Equal(ids2, ids) || fake.totalRuns() != 0 {
		t.Fatalf("a restart after completion changed the batch: %+v, %v, %d runs", again.Batch, ids2, fake.totalRuns())
	}
}

// TestALineIsRecordedOnce: a second result for a line (a run that raced a
// restart) is refused, and the counts do not move.
func TestALineIsRecordedOnce(t *testing.T) {
	s := openStore(t, "")
	b := createBatch(t, s, "", chatLines(2))
	if err := s.validate(context.Background(), &batchRow{Batch: *b}, nil); err != nil {
		t.Fatal(err)
	}
	first, err := s.recordLine(b.ID, 1, lineResult{requestID: "req_1", status: 200, body: []byte(`{"n":1}`)})
	if err != nil || !first {
		t.Fatalf("the first result: %v, %v", first, err)
	}
	second, err := s.recordLine(b.ID, 1, lineResult{errCode: "server_error", errMsg: "late"})
	if err != nil || second {
		t.Fatalf("a second result was recorded: %v, %v", second, err)
	}
	got, _ := s.GetBatch(context.Background(), "", b.ID)
	var resp string
	s.db.QueryRow(`SELECT response FROM lines WHERE batch_id = ? AND line_no = 1`, b.ID).Scan(&resp)
	if got.RequestCounts != (RequestCounts{Total: 2, Completed: 1}) || resp != `{"n":1}` {
		t.Fatalf("after a second result: %+v, response %s", got.RequestCounts, resp)
	}
}
