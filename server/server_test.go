package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
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
