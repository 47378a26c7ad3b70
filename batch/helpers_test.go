package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// testConfig is a small, fast configuration in dir.
func testConfig(dir string) Config {
	c := DefaultConfig()
	c.DataDir = dir
	c.PollInterval = 20 * time.Millisecond
	return c
}

// openStore opens a store in dir (a new temporary folder when "") and
// closes it at the end of the test.
func openStore(t *testing.T, dir string, opts ...Option) *Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	return openStoreConfig(t, testConfig(dir), opts...)
}

func openStoreConfig(t *testing.T, cfg Config, opts ...Option) *Store {
	t.Helper()
	s, err := Open(cfg, zaptest.NewLogger(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// reqLine is one input line for endpoint with a body the fake executor
// understands: tag is echoed back, and picks the answer (see fakeExec).
func reqLine(customID, endpoint, tag string) string {
	b, _ := json.Marshal(map[string]any{
		"custom_id": customID, "method": "POST", "url": endpoint,
		"body": map[string]any{"model": "base", "messages": []any{map[string]string{"role": "user", "content": "hi"}}, "tag": tag},
	})
	return string(b)
}

// chatLines are n valid chat lines with custom_ids c-1..c-n.
func chatLines(n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, reqLine(fmt.Sprintf("c-%d", i), EndpointChatCompletions, fmt.Sprintf("c-%d", i)))
	}
	return out
}

func upload(t *testing.T, s *Store, owner string, lines []string) *File {
	t.Helper()
	f, err := s.CreateFile(context.Background(), owner, PurposeBatch, "in.jsonl", strings.NewReader(strings.Join(lines, "\n")+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func createBatch(t *testing.T, s *Store, owner string, lines []string) *Batch {
	t.Helper()
	f := upload(t, s, owner, lines)
	b, err := s.CreateBatch(context.Background(), owner, CreateBatchParams{InputFileID: f.ID, Endpoint: EndpointChatCompletions, CompletionWindow: "24h"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor polls owner's batch until cond holds.
func waitFor(t *testing.T, s *Store, owner, id string, what string, cond func(*Batch) bool) *Batch {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := s.GetBatch(context.Background(), owner, id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(b) {
			return b
		}
		if time.Now().After(deadline) {
			js, _ := json.Marshal(b)
			t.Fatalf("batch never got %s: %s", what, js)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitStatus(t *testing.T, s *Store, owner, id string, st Status) *Batch {
	t.Helper()
	return waitFor(t, s, owner, id, "status "+string(st), func(b *Batch) bool { return b.Status == st })
}

// outputLines reads owner's file id as output lines.
func outputLines(t *testing.T, s *Store, owner string, id *string) []OutputLine {
	t.Helper()
	if id == nil {
		return nil
	}
	_, r, err := s.FileContent(context.Background(), owner, *id)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	var out []OutputLine
	for _, l := range bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n")) {
		var o OutputLine
		if err := json.Unmarshal(l, &o); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		out = append(out, o)
	}
	return out
}

func customIDs(lines []OutputLine) []string {
	var ids []string
	for _, l := range lines {
		ids = append(ids, l.CustomID)
	}
	return ids
}

func kindOf(err error) Kind {
	var be *Error
	if errors.As(err, &be) {
		return be.Kind
	}
	return 0
}

// fakeExec answers by the body's tag: "bad-<x>" with a 400, "err-<x>" with
// an error (no answer), "panic-<x>" by panicking, anything else with a 200 echoing the tag. hold,
// when set, is waited on (or ctx) before answering, by the lines blocked
// says (all when nil). It counts lines in flight and the most at once.
type fakeExec struct {
	mu        sync.Mutex
	calls     map[string]int // tag → answers given
	cancelled int            // lines that saw their ctx cancelled
	inflight  int
	maxSeen   int
	hold      chan struct{}
	blocked   func(tag string) bool
	delay     time.Duration
	started   chan string   // when set, each tag is sent as the line starts
	onCancel  chan struct{} // when set, a cancelled line waits for it before returning
	before    func(tag string) error
}

func newFake() *fakeExec { return &fakeExec{calls: map[string]int{}} }

func (f *fakeExec) Execute(ctx context.Context, endpoint string, body json.RawMessage) (int, json.RawMessage, error) {
	var req struct {
		Tag string `json:"tag"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, nil, err
	}
	f.mu.Lock()
	f.inflight++
	f.maxSeen = max(f.maxSeen, f.inflight)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inflight--
		f.mu.Unlock()
	}()
	if f.started != nil {
		f.started <- req.Tag
	}
	if f.before != nil {
		if err := f.before(req.Tag); err != nil {
			return 0, nil, err
		}
	}
	wait := f.hold
	if f.blocked != nil && !f.blocked(req.Tag) {
		wait = nil
	}
	var timer <-chan time.Time
	if f.delay > 0 {
		timer = time.After(f.delay)
	}
	if wait != nil || timer != nil {
		select {
		case <-wait:
		case <-timer:
		case <-ctx.Done():
			f.mu.Lock()
			f.cancelled++
			f.mu.Unlock()
			if f.onCancel != nil {
				<-f.onCancel
			}
			return 0, nil, ctx.Err()
		}
	}
	f.mu.Lock()
	f.calls[req.Tag]++
	f.mu.Unlock()
	switch {
	case strings.HasPrefix(req.Tag, "bad-"):
		return 400, json.RawMessage(`{"error":{"message":"bad request","type":"invalid_request_error","param":null,"code":null}}`), nil
	case strings.HasPrefix(req.Tag, "err-"):
		return 0, nil, errors.New("the engine failed")
	case strings.HasPrefix(req.Tag, "panic-"):
		panic("the executor broke")
	}
	resp, _ := json.Marshal(map[string]any{"object": "chat.completion", "endpoint": endpoint, "echo": req.Tag, "request_id": RequestID(ctx)})
	return 200, resp, nil
}

func (f *fakeExec) runs(tag string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[tag]
}

func (f *fakeExec) totalRuns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}
