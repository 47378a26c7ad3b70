package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/qwen3-lora/qwen3-server/configs"
	"github.com/qwen3-lora/qwen3-server/engine/fake"
	"github.com/qwen3-lora/qwen3-server/server/apierror"
	"github.com/qwen3-lora/qwen3-server/server/openai"
)

func newTestServer() *Server {
	cfg, _ := configs.Load(nil, nil)
	return New(configs.ServerConfig{Addr: "127.0.0.1:0", MaxBodyBytes: 1 << 20}, cfg.Sampling, nil)
}

func get(t *testing.T, s *Server, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w
}

func TestHealthWhileLoadingThenReady(t *testing.T) {
	s := newTestServer()
	w := get(t, s, "/health")
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("loading: %d %s", w.Code, w.Body)
	}
	w = get(t, s, "/v1/models")
	var body apierror.Body
	if w.Code != http.StatusServiceUnavailable || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Error.Code == nil || *body.Error.Code != "model_loading" {
		t.Fatalf("models while loading: %d %s", w.Code, w.Body)
	}
	s.SetEngine(fake.New("hi"))
	if w = get(t, s, "/health"); w.Code != http.StatusOK {
		t.Fatalf("ready: %d %s", w.Code, w.Body)
	}
}

func TestModelsList(t *testing.T) {
	s := newTestServer()
	s.SetEngine(fake.New())
	w := get(t, s, "/v1/models")
	var list openai.ModelList
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || w.Code != 200 {
		t.Fatalf("%d %s %v", w.Code, w.Body, err)
	}
	if list.Object != "list" || len(list.Data) != 1 || list.Data[0].ID != "fake-qwen3" || list.Data[0].Object != "model" || list.Data[0].MaxModelLen != 4096 {
		t.Fatalf("unexpected list %+v", list)
	}
	// The defaults a client can show: the configured mode presets.
	d := list.Data[0].Defaults
	if d == nil || *d.Thinking.Temperature != 0.6 || *d.Thinking.TopP != 0.95 || *d.Thinking.TopK != 20 ||
		*d.NonThinking.Temperature != 0.7 || *d.NonThinking.TopP != 0.8 || *d.NonThinking.TopK != 20 || !d.EnableThinking {
		t.Fatalf("defaults %s", w.Body)
	}
}

func TestUnknownRouteIsOpenAIError(t *testing.T) {
	s := newTestServer()
	w := get(t, s, "/v1/nothing")
	var body apierror.Body
	if w.Code != 404 || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Error.Message == "" || body.Error.Type != "invalid_request_error" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if w.Header().Get("X-Request-Id") == "" {
		t.Fatal("no X-Request-Id")
	}
}

func TestWebUISwitch(t *testing.T) {
	cfg, _ := configs.Load(nil, nil)
	on := New(configs.ServerConfig{Addr: "127.0.0.1:0", MaxBodyBytes: 1 << 20, WebUI: true}, cfg.Sampling, nil)
	if w := get(t, on, "/"); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "<title>Qwen3 chat</title>") {
		t.Fatalf("web_ui on: %d", w.Code)
	}
	if w := get(t, on, "/assets/app.js"); w.Code != http.StatusOK {
		t.Fatalf("asset: %d", w.Code)
	}
	off := newTestServer()
	if w := get(t, off, "/"); w.Code != http.StatusNotFound {
		t.Fatalf("web_ui off: %d", w.Code)
	}
}
