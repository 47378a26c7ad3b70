package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qwen3-lora/qwen3-server/adapters"
	"github.com/qwen3-lora/qwen3-server/configs"
	"github.com/qwen3-lora/qwen3-server/engine/fake"
	"github.com/qwen3-lora/qwen3-server/server/apierror"
)

// keyedServer is a server on the fake engine with the given keys and an
// adapter folder holding a.gguf and b.gguf (the fake loader accepts any file).
func keyedServer(t *testing.T, sc configs.ServerConfig) (*Server, string) {
	t.Helper()
	cfg, _ := configs.Load(nil, nil)
	sc.Addr, sc.MaxBodyBytes = "127.0.0.1:0", 1<<20
	s := New(sc, cfg.Sampling, nil)
	s.SetEngine(fake.New("ok"))
	root := t.TempDir()
	for _, n := range []string{"a.gguf", "b.gguf"} {
		if err := os.WriteFile(filepath.Join(root, n), []byte("GGUF"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reg, err := adapters.NewRegistry(fakeLoader{}, []string{root}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.SetAdapters(reg)
	return s, root
}

// wantError checks an answer's status and that its body is an OpenAI
// error of the given type and code.
func wantError(t *testing.T, what string, w *httptest.ResponseRecorder, status int, typ, code string) apierror.Detail {
	t.Helper()
	var b apierror.Body
	if w.Code != status || json.Unmarshal(w.Body.Bytes(), &b) != nil || b.Error.Type != typ || b.Error.Message == "" {
		t.Fatalf("%s: %d %s, want %d %s", what, w.Code, w.Body, status, typ)
	}
	if code != "" && (b.Error.Code == nil || *b.Error.Code != code) {
		t.Fatalf("%s: code %v, want %s (%s)", what, b.Error.Code, code, w.Body)
	}
	return b.Error
}

func bearer(key string) []string {
	if key == "" {
		return nil
	}
	return []string{"Authorization", "Bearer " + key}
}

// Admin keys guard the operator routes; API keys keep the inference routes
// and get 403 on the operator ones; admin keys work as API keys.
func TestAdminKeys(t *testing.T) {
	s, _ := keyedServer(t, configs.ServerConfig{APIKeys: []string{"user1", "user2"}, AdminKeys: []string{"root"}})
	chat := `{"messages":[{"role":"user","content":"hi"}],"max_tokens":1}`
	for _, key := range []string{"user2", "root"} {
		if w := do(s, "POST", "/v1/chat/completions", chat, bearer(key)...); w.Code != 200 {
			t.Fatalf("chat with %s: %d %s", key, w.Code, w.Body)
		}
		if w := do(s, "POST", "/v1/completions", `{"prompt":"x","max_tokens":1}`, bearer(key)...); w.Code != 200 {
			t.Fatalf("completions with %s: %d %s", key, w.Code, w.Body)
		}
		if w := do(s, "GET", "/v1/models", "", bearer(key)...); w.Code != 200 {
			t.Fatalf("models with %s: %d %s", key, w.Code, w.Body)
		}
	}
	wantError(t, "chat without a key", do(s, "POST", "/v1/chat/completions", chat), 401, "authentication_error", "invalid_api_key")

	load := `{"name":"a","path":"a.gguf"}`
	operator := []struct{ method, path, body string }{
		{"POST", "/v1/adapters", load},
		{"GET", "/v1/adapters", ""},
		{"DELETE", "/v1/adapters/a", ""},
	}
	for _, r := range operator {
		d := wantError(t, r.method+" "+r.path+" with an API key", do(s, r.method, r.path, r.body, bearer("user1")...), 403, "permission_error", "admin_key_required")
		if !strings.Contains(d.Message, "admin key") {
			t.Errorf("403 does not say what is needed: %s", d.Message)
		}
		wantError(t, r.method+" "+r.path+" without a key", do(s, r.method, r.path, r.body), 401, "authentication_error", "")
		wantError(t, r.method+" "+r.path+" with a wrong key", do(s, r.method, r.path, r.body, bearer("root2")...), 401, "authentication_error", "")
	}
	if reg := s.adapterRegistry(); len(reg.List()) != 0 {
		t.Fatalf("an API key loaded an adapter: %+v", reg.List())
	}
	if w := do(s, "POST", "/v1/adapters", load, bearer("root")...); w.Code != 201 {
		t.Fatalf("load with the admin key: %d %s", w.Code, w.Body)
	}
	if w := do(s, "GET", "/v1/adapters", "", bearer("root")...); w.Code != 200 || !strings.Contains(w.Body.String(), `"name":"a"`) {
		t.Fatalf("list with the admin key: %d %s", w.Code, w.Body)
	}
	// The adapter is served to ordinary keys under its name.
	if w := do(s, "POST", "/v1/chat/completions", `{"model":"a","messages":[{"role":"user","content":"hi"}]}`, bearer("user1")...); w.Code != 200 {
		t.Fatalf("chat with the adapter: %d %s", w.Code, w.Body)
	}
	wantError(t, "unload with an API key", do(s, "DELETE", "/v1/adapters/a", "", bearer("user1")...), 403, "permission_error", "admin_key_required")
	if w := do(s, "DELETE", "/v1/adapters/a", "", bearer("root")...); w.Code != 200 {
		t.Fatalf("unload with the admin key: %d %s", w.Code, w.Body)
	}
}

// The combinations of configured keys.
func TestAdminKeyModes(t *testing.T) {
	load := `{"name":"b","path":"b.gguf"}`
	chat := `{"messages":[{"role":"user","content":"hi"}],"max_tokens":1}`

	// Admin keys alone: the inference routes stay open, the operator ones not.
	s, _ := keyedServer(t, configs.ServerConfig{AdminKeys: []string{"root"}})
	if w := do(s, "POST", "/v1/chat/completions", chat); w.Code != 200 {
		t.Fatalf("admin keys only, chat without a key: %d %s", w.Code, w.Body)
	}
	wantError(t, "admin keys only, load without a key", do(s, "POST", "/v1/adapters", load), 401, "authentication_error", "")
	if w := do(s, "POST", "/v1/adapters", load, bearer("root")...); w.Code != 201 {
		t.Fatalf("admin keys only, load with it: %d %s", w.Code, w.Body)
	}

	// API keys alone: nobody may use the operator routes.
	s, _ = keyedServer(t, configs.ServerConfig{APIKeys: []string{"user"}})
	d := wantError(t, "API keys only, load", do(s, "POST", "/v1/adapters", load, bearer("user")...), 403, "permission_error", "admin_key_required")
	if !strings.Contains(d.Message, "server.admin_keys") {
		t.Errorf("the refusal does not name the setting: %s", d.Message)
	}

	// No keys: a local server, every route open.
	s, _ = keyedServer(t, configs.ServerConfig{})
	if w := do(s, "POST", "/v1/adapters", load); w.Code != 201 {
		t.Fatalf("no keys, load: %d %s", w.Code, w.Body)
	}
}

// server.metrics_auth: /metrics for admin keys only; server.metrics_addr:
// /metrics on its own listener and not on the main one.
func TestMetricsAccess(t *testing.T) {
	s, _ := keyedServer(t, configs.ServerConfig{APIKeys: []string{"user"}, AdminKeys: []string{"root"}})
	if w := do(s, "GET", "/metrics", ""); w.Code != 200 {
		t.Fatalf("metrics open by default: %d", w.Code)
	}

	s, _ = keyedServer(t, configs.ServerConfig{APIKeys: []string{"user"}, AdminKeys: []string{"root"}, MetricsAuth: true})
	wantError(t, "metrics without a key", do(s, "GET", "/metrics", ""), 401, "authentication_error", "")
	wantError(t, "metrics with an API key", do(s, "GET", "/metrics", "", bearer("user")...), 403, "permission_error", "admin_key_required")
	if w := do(s, "GET", "/metrics", "", bearer("root")...); w.Code != 200 || !strings.Contains(w.Body.String(), "vllm:num_requests_running") {
		t.Fatalf("metrics with the admin key: %d %s", w.Code, w.Body)
	}

	s, _ = keyedServer(t, configs.ServerConfig{MetricsAddr: "127.0.0.1:0"})
	wantError(t, "metrics on the main listener with metrics_addr", do(s, "GET", "/metrics", ""), 404, "invalid_request_error", "not_found")
	w := httptest.NewRecorder()
	s.MetricsHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != 200 || !strings.Contains(w.Body.String(), "# TYPE vllm:num_requests_waiting gauge") {
		t.Fatalf("metrics listener: %d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	s.MetricsHandler().ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(`{}`)))
	if w.Code != 404 {
		t.Fatalf("the metrics listener serves the API: %d", w.Code)
	}
}

// Refusals to load an adapter name no server-side folder: not the adapter
// folder a relative path was resolved in, not where a symlink leads.
func TestAdapterRefusalsHidePaths(t *testing.T) {
	s, root := keyedServer(t, configs.ServerConfig{})
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.gguf")
	if err := os.WriteFile(secret, []byte("GGUF"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(root, "link.gguf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "broken"), 0o755); err != nil { // a folder that is no PEFT adapter
		t.Fatal(err)
	}
	rel, err := filepath.Rel(root, secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, want string
		status     int
	}{
		{rel, "outside the adapter folders", 403},
		{"link.gguf", "outside the adapter folders", 403},
		{"missing.gguf", "does not exist", 404},
		{"broken", "PEFT adapter", 400},
	} {
		body, _ := json.Marshal(map[string]string{"name": "x", "path": c.path})
		w := do(s, "POST", "/v1/adapters", string(body))
		if w.Code != c.status || !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("%s: %d %s, want %d %q", c.path, w.Code, w.Body, c.status, c.want)
		}
		for _, p := range []string{root, outside, filepath.Dir(root)} {
			if strings.Contains(w.Body.String(), p) {
				t.Errorf("%s: the refusal names the server-side path %s: %s", c.path, p, w.Body)
			}
		}
	}
}
