package server

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/fake"
)

// Drain: readiness fails at once, liveness does not, new API requests get
// 503 with Retry-After in OpenAI's shape, the running one finishes, and
// Drain returns when it did.
func TestDrain(t *testing.T) {
	s := newTestServer()
	if w := get(t, s, "/health/live"); w.Code != http.StatusOK {
		t.Fatalf("live while loading: %d", w.Code)
	}
	f := fake.New("a", "b")
	f.Block = make(chan struct{})
	s.SetEngine(f)
	running := make(chan int, 1)
	go func() {
		running <- do(s, "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`).Code
	}()
	waitStats(t, f, "the request to run", func(st engine.Stats) bool { return st.BusySlots == 1 })

	drained := make(chan error, 1)
	go func() { drained <- s.Drain(context.Background()) }()
	deadline := time.Now().Add(5 * time.Second)
	for get(t, s, "/health").Code != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("readiness still passes while draining")
		}
		time.Sleep(time.Millisecond)
	}
	if w := get(t, s, "/health/live"); w.Code != http.StatusOK {
		t.Fatalf("live while draining: %d", w.Code)
	}
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`},
		{"POST", "/v1/completions", `{"prompt":"x"}`},
		{"GET", "/v1/models", ""},
	} {
		w := do(s, r.method, r.path, r.body)
		wantError(t, r.path+" while draining", w, http.StatusServiceUnavailable, "server_error", "shutting_down")
		if w.Header().Get("Retry-After") == "" || w.Header().Get("Connection") != "close" {
			t.Errorf("%s: headers %v", r.path, w.Header())
		}
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) while a request runs", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(f.Block)
	if code := <-running; code != http.StatusOK {
		t.Fatalf("the running request: %d", code)
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if len(f.Requests) != 1 {
		t.Fatalf("the engine saw %d requests, want only the one before the drain", len(f.Requests))
	}
}

// A drain that runs out of time says so.
func TestDrainGraceOver(t *testing.T) {
	s := newTestServer()
	f := fake.New("a")
	f.Block = make(chan struct{})
	defer close(f.Block)
	s.SetEngine(f)
	go do(s, "POST", "/v1/completions", `{"prompt":"x"}`)
	waitStats(t, f, "the request to run", func(st engine.Stats) bool { return st.BusySlots == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := s.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain past the grace: %v", err)
	}
}
