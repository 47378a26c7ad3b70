package server

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qwen3-lora/qwen3-server/adapters"
	"github.com/qwen3-lora/qwen3-server/tools/modelgen"
)

func adapterServer(t *testing.T) (*Server, string) {
	t.Helper()
	s, e := randomServer(t, 4, 1024)
	root := t.TempDir()
	for i, name := range []string{"medical", "chat"} {
		p := modelgen.RandomPEFT{Dims: modelgen.Dims{Layers: 2, Hidden: 64, QDim: 64, KVDim: 32, FFN: 192}, Rank: 8, Alpha: 16, DType: "BF16",
			Seed: uint64(i + 1), Scale: 0.5, Targets: []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}}
		if err := p.Write(filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	reg, err := adapters.NewRegistry(e, []string{root}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.SetAdapters(reg)
	return s, root
}

func completionText(t *testing.T, s *Server, body string) (string, int) {
	t.Helper()
	w := do(s, "POST", "/v1/completions", body)
	var res struct {
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
	}
	json.Unmarshal(w.Body.Bytes(), &res)
	if w.Code != 200 {
		return w.Body.String(), w.Code
	}
	return res.Choices[0].Text, w.Code
}

func TestAdapterAPI(t *testing.T) {
	s, root := adapterServer(t)
	if w := do(s, "POST", "/v1/adapters", `{"name":"medical","path":"medical"}`); w.Code != 201 || !strings.Contains(w.Body.String(), `"format":"peft"`) {
		t.Fatalf("load: %d %s", w.Code, w.Body)
	}
	if w := do(s, "POST", "/v1/adapters", `{"name":"medical","path":"chat"}`); w.Code != 409 {
		t.Fatalf("duplicate: %d %s", w.Code, w.Body)
	}
	outside := t.TempDir()
	os.Symlink(outside, filepath.Join(root, "escape"))
	for body, want := range map[string]int{
		`{"name":"x","path":"/etc"}`:        403,
		`{"name":"x","path":"../"}`:         403,
		`{"name":"x","path":"escape"}`:      403,
		`{"name":"x","path":"missing"}`:     404,
		`{"name":"bad name","path":"chat"}`: 400,
	} {
		if w := do(s, "POST", "/v1/adapters", body); w.Code != want {
			t.Errorf("%s: %d, want %d: %s", body, w.Code, want, w.Body)
		}
	}
	w := do(s, "GET", "/v1/models", "")
	if !strings.Contains(w.Body.String(), `"id":"medical","object":"model"`) || !strings.Contains(w.Body.String(), `"parent":"tiny-random"`) {
		t.Fatalf("models: %s", w.Body)
	}
	req := func(model, extra string) string {
		return `{"model":"` + model + `","prompt":"The patient reports","max_tokens":12,"temperature":0` + extra + `}`
	}
	base, _ := completionText(t, s, req("tiny-random", ""))
	med, code := completionText(t, s, req("medical", ""))
	if code != 200 || med == base {
		t.Fatalf("adapter output %q (%d) vs base %q", med, code, base)
	}
	if colon, _ := completionText(t, s, req("tiny-random:medical", "")); colon != med {
		t.Fatalf("base:adapter %q != %q", colon, med)
	}
	if zero, _ := completionText(t, s, req("tiny-random", `,"lora":[{"name":"medical","scale":0}]`)); zero != base {
		t.Fatalf("scale 0 %q != base %q", zero, base)
	}
	// An explicit negative scale is refused, not taken for "the default".
	if w := do(s, "POST", "/v1/completions", req("tiny-random", `,"lora":[{"name":"medical","scale":-1}]`)); w.Code != 400 || !strings.Contains(w.Body.String(), `"param":"lora"`) || !strings.Contains(w.Body.String(), "lora[0].scale") {
		t.Fatalf("negative scale: %d %s", w.Code, w.Body)
	}
	// A stack deeper than the engine runs is refused before any loads.
	nine := `,"lora":[` + strings.Repeat(`{"name":"medical","scale":0.1},`, 8) + `{"name":"medical","scale":0.1}]`
	if w := do(s, "POST", "/v1/completions", req("tiny-random", nine)); w.Code != 400 || !strings.Contains(w.Body.String(), `"param":"lora"`) || !strings.Contains(w.Body.String(), "at most 8") {
		t.Fatalf("nine adapters: %d %s", w.Code, w.Body)
	}
	if _, code := completionText(t, s, req("nope", "")); code != 404 {
		t.Fatalf("unknown adapter: %d", code)
	}
	if w := do(s, "GET", "/v1/adapters", ""); !strings.Contains(w.Body.String(), `"rank":8`) {
		t.Fatalf("list: %s", w.Body)
	}
}

// Unloading while a request streams: the request finishes with its
// adapter; later requests get 404.
func TestUnloadDuringStream(t *testing.T) {
	s, _ := adapterServer(t)
	if w := do(s, "POST", "/v1/adapters", `{"name":"chat","path":"chat"}`); w.Code != 201 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(`{"model":"chat","prompt":"Hello","max_tokens":200,"ignore_eos":true,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	line, _ := rd.ReadString('\n') // first event: the request is running
	if !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first line %q", line)
	}
	if w := do(s, "DELETE", "/v1/adapters/chat", ""); w.Code != 200 {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	if _, code := completionText(t, s, `{"model":"chat","prompt":"x","max_tokens":2}`); code != 404 {
		t.Fatalf("after unload: %d", code)
	}
	rest, _ := io.ReadAll(rd)
	out := string(rest)
	if !strings.Contains(out, `"finish_reason":"length"`) || !strings.HasSuffix(out, "data: [DONE]\n\n") || strings.Contains(out, `data: {"error"`) {
		t.Fatalf("stream did not finish cleanly:\n%s", out)
	}
	if w := do(s, "DELETE", "/v1/adapters/chat", ""); w.Code != 404 {
		t.Fatalf("second delete: %d", w.Code)
	}
}

func TestAdapterLRUEviction(t *testing.T) {
	s, root := adapterServer(t)
	reg := s.adapterRegistry()
	reg.MaxLoaded = 2
	p := modelgen.RandomPEFT{Dims: modelgen.Dims{Layers: 2, Hidden: 64, QDim: 64, KVDim: 32, FFN: 192}, Rank: 2, Alpha: 2, DType: "F32", Seed: 9, Scale: 0.1, Targets: []string{"q_proj"}}
	if err := p.Write(filepath.Join(root, "third")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"medical", "chat"} {
		if w := do(s, "POST", "/v1/adapters", `{"name":"`+n+`","path":"`+n+`"}`); w.Code != 201 {
			t.Fatalf("%s: %d %s", n, w.Code, w.Body)
		}
	}
	// use medical, so chat is the least recently used
	if _, code := completionText(t, s, `{"model":"medical","prompt":"x","max_tokens":1}`); code != 200 {
		t.Fatal(code)
	}
	if w := do(s, "POST", "/v1/adapters", `{"name":"third","path":"third"}`); w.Code != 201 {
		t.Fatalf("third: %d %s", w.Code, w.Body)
	}
	var names []string
	for _, e := range reg.List() {
		names = append(names, e.Name)
	}
	if strings.Join(names, ",") != "medical,third" {
		t.Fatalf("after eviction: %v", names)
	}
}

// A PEFT folder and the GGUF file converted from it are the same adapter;
// loading one while another request streams harms nothing.
func TestPEFTAndGGUFFormsAgreeLoadDuringTraffic(t *testing.T) {
	s, root := adapterServer(t)
	if _, err := adapters.ConvertPEFT(filepath.Join(root, "medical"), filepath.Join(root, "medical.gguf")); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"Hello","max_tokens":150,"ignore_eos":true,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	if line, _ := rd.ReadString('\n'); !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first line %q", line)
	}
	for _, body := range []string{`{"name":"peft","path":"medical"}`, `{"name":"gguf","path":"medical.gguf"}`} {
		if w := do(s, "POST", "/v1/adapters", body); w.Code != 201 {
			t.Fatalf("%s: %d %s", body, w.Code, w.Body)
		}
	}
	rest, _ := io.ReadAll(rd)
	if out := string(rest); !strings.Contains(out, `"finish_reason":"length"`) || strings.Contains(out, `data: {"error"`) {
		t.Fatalf("the request streaming during the loads did not finish cleanly:\n%s", out)
	}
	a, _ := completionText(t, s, `{"model":"peft","prompt":"The patient reports","max_tokens":12,"temperature":0}`)
	b, _ := completionText(t, s, `{"model":"gguf","prompt":"The patient reports","max_tokens":12,"temperature":0}`)
	if a != b || a == "" {
		t.Fatalf("PEFT form %q, GGUF form %q", a, b)
	}
}
