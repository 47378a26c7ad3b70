package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qwen3-lora/qwen3-server/internal/testutil"
	"github.com/qwen3-lora/qwen3-server/tools/modelgen"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeBinary runs the built binary the way `make run` does: demo model,
// no GPU flag (auto: the CPU here, with one warning), the CPU backend variant
// from lib/ollama, health goes ready, models lists it, a completion runs,
// SIGTERM shuts it down cleanly.
func TestServeBinary(t *testing.T) {
	root := testutil.RepoRoot(t)
	bin := filepath.Join(root, "bin", "qwen3-server")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s missing: `make test` builds it first", bin)
	}
	addr := freeAddr(t)
	var logs bytes.Buffer
	cmd := exec.Command(bin, "serve", "--config", filepath.Join(root, "configs", "qwen3-server.yaml"),
		"--demo-model", testutil.Model(t, "tiny-random.gguf"), "--addr", addr, "--ctx-size", "256", "--parallel", "2")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready in 30 s; log:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Get("http://" + addr + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Data []struct{ ID string } `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list.Data) != 1 || list.Data[0].ID != "tiny-random" {
		t.Fatalf("models: %+v", list)
	}
	resp, err = http.Post("http://"+addr+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"Hello","max_tokens":4}`))
	if err != nil {
		t.Fatal(err)
	}
	var cmpl struct {
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	json.NewDecoder(resp.Body).Decode(&cmpl)
	resp.Body.Close()
	if resp.StatusCode != 200 || cmpl.Usage.CompletionTokens != 4 {
		t.Fatalf("completion: status %d, %+v\n%s", resp.StatusCode, cmpl, logs.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, cmd, &logs, "SIGTERM")
	out := logs.String()
	for _, want := range []string{"DEMO model", "random", "backend", "shutting down",
		`"cpu_backend": "libggml-cpu-`, "loaded CPU backend from " + filepath.Join(root, "lib", "ollama")} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "no GPU backend loaded: running on the CPU"); n != 1 {
		t.Errorf("want the no-GPU warning once, got it %d times:\n%s", n, out)
	}
}

// TestServeDrain: SIGTERM while a stream runs. Readiness fails at once,
// liveness holds, a new request gets 503 with Retry-After in OpenAI's
// error shape, the stream runs to its end, the process exits 0. /metrics
// is on its own listener (server.metrics_addr), as the Helm chart sets it.
func TestServeDrain(t *testing.T) {
	root := testutil.RepoRoot(t)
	bin := filepath.Join(root, "bin", "qwen3-server")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s missing: `make test` builds it first", bin)
	}
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	var logs syncBuffer
	cmd := exec.Command(bin, "serve", "--model", testutil.Model(t, "tiny-random.gguf"), "--gpu-layers", "0",
		"--addr", addr, "--ctx-size", "4096", "--parallel", "2")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"QWEN3_SERVER_SHUTDOWN_GRACE=60s", "QWEN3_SERVER_METRICS_ADDR=" + metricsAddr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	base := "http://" + addr
	waitStatus(t, base+"/health", 200, 30*time.Second, &logs)
	if code := status(t, base+"/health/live"); code != 200 {
		t.Fatalf("/health/live: %d", code)
	}
	if code := status(t, base+"/metrics"); code != 404 {
		t.Errorf("/metrics on the API listener with metrics_addr: %d", code)
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(m), `vllm:cache_config_info{block_size="1",num_gpu_blocks="8192"} 1`) {
		t.Fatalf("metrics listener: %d\n%s", resp.StatusCode, m)
	}

	// A stream of about 4 s on this machine (its speed measured first: the
	// tiny model runs at a few tokens a second on a loaded CI core and at
	// thousands on a fast one); SIGTERM once its first chunk arrived.
	start := time.Now()
	resp, err = http.Post(base+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"Hello","max_tokens":8,"ignore_eos":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	maxTokens := min(max(int(4*time.Second/(time.Since(start)/8)), 8), 4000)
	t.Logf("streaming %d tokens", maxTokens)
	resp, err = http.Post(base+"/v1/completions", "application/json", strings.NewReader(fmt.Sprintf(`{"prompt":"Hello","max_tokens":%d,"ignore_eos":true,"stream":true}`, maxTokens)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() && !strings.HasPrefix(lines.Text(), "data: {") {
	}
	type streamEnd struct {
		chunks int
		finish string
		done   bool
		err    error
	}
	ended := make(chan streamEnd, 1)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go func() {
		var e streamEnd
		for lines.Scan() {
			line := lines.Text()
			if line == "data: [DONE]" {
				e.done = true
				continue
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				e.chunks++
				var c struct {
					Choices []struct {
						FinishReason *string `json:"finish_reason"`
					} `json:"choices"`
				}
				if json.Unmarshal([]byte(data), &c) == nil && len(c.Choices) > 0 && c.Choices[0].FinishReason != nil {
					e.finish = *c.Choices[0].FinishReason
				}
			}
		}
		e.err = lines.Err()
		ended <- e
	}()

	waitStatus(t, base+"/health", 503, 5*time.Second, &logs)
	if code := status(t, base+"/health/live"); code != 200 {
		t.Errorf("/health/live while draining: %d", code)
	}
	resp2, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatalf("a request during the drain was not answered: %v", err)
	}
	var body struct {
		Error struct {
			Message, Type string
			Code          *string
		}
	}
	json.NewDecoder(resp2.Body).Decode(&body)
	resp2.Body.Close()
	if resp2.StatusCode != 503 || resp2.Header.Get("Retry-After") == "" || body.Error.Type != "server_error" || body.Error.Code == nil || *body.Error.Code != "shutting_down" || body.Error.Message == "" {
		t.Errorf("a request during the drain: %d %v %+v", resp2.StatusCode, resp2.Header, body)
	}
	select {
	case e := <-ended:
		t.Fatalf("the stream ended (%+v) before the drain was checked: the test proves nothing, make it longer", e)
	default:
	}
	select {
	case e := <-ended:
		if e.err != nil || !e.done || e.finish != "length" || e.chunks < 2 {
			t.Errorf("the stream in flight at SIGTERM was cut: %+v", e)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the stream did not end within the grace")
	}
	waitExit(t, cmd, &logs, "the drain")
	if out := logs.String(); !strings.Contains(out, "shutting down: draining") || strings.Contains(out, "cutting") {
		t.Errorf("log:\n%s", out)
	}
}

// waitExit waits for the server to exit 0 after what.
func waitExit(t *testing.T, cmd *exec.Cmd, logs fmt.Stringer, what string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after %s: %v\n%s", what, err, logs)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit after %s\n%s", what, logs)
	}
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitStatus polls url until it answers want.
func waitStatus(t *testing.T, url string, want int, within time.Duration, logs *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %d within %v; log:\n%s", url, want, within, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	root := testutil.RepoRoot(t)
	bin := filepath.Join(root, "bin", "qwen3-server")
	cfg := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(cfg, []byte("engine:\n  paralel: 2\n"), 0o644)
	for _, args := range [][]string{
		{"serve", "--config", cfg},
		{"serve", "--model", "/nonexistent.gguf"},
		{"serve", "--model", testutil.Model(t, "tiny-random.gguf"), "--kv-cache-type", "q5"},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err == nil {
			t.Errorf("%v: want failure, got success:\n%s", args, out)
			continue
		}
		if !strings.Contains(string(out), "error:") {
			t.Errorf("%v: unclear message:\n%s", args, out)
		}
		fmt.Fprintf(os.Stderr, "%v -> %s", args[1:], out)
	}
}

// TestQuantize quantizes the tiny model and serves the result.
func TestQuantize(t *testing.T) {
	root := testutil.RepoRoot(t)
	bin := filepath.Join(root, "bin", "qwen3-server")
	for _, typ := range []string{"Q8_0", "Q4_K_M"} {
		out := filepath.Join(t.TempDir(), typ+".gguf")
		b, err := exec.Command(bin, "quantize", "--in", testutil.Model(t, "tiny-random.gguf"), "--out", out, "--type", typ).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", typ, err, b)
		}
		st, _ := os.Stat(out)
		orig, _ := os.Stat(testutil.Model(t, "tiny-random.gguf"))
		if st == nil || st.Size() >= orig.Size() {
			t.Fatalf("%s: output not smaller than the F16 input", typ)
		}
		b, err = exec.Command(bin, "bench", "--model", out, "--gpu-layers", "0", "--parallel", "1", "--prompt-len", "8", "--gen-len", "4", "--batch-size", "64").CombinedOutput()
		if err != nil || !strings.Contains(string(b), "| 1 |") {
			t.Fatalf("%s model does not run: %v\n%s", typ, err, b)
		}
	}
	if b, err := exec.Command(bin, "quantize", "--in", testutil.Model(t, "tiny-random.gguf"), "--out", filepath.Join(t.TempDir(), "x.gguf"), "--type", "Q9").CombinedOutput(); err == nil || !strings.Contains(string(b), "unknown quantization") {
		t.Fatalf("bad type accepted: %s", b)
	}
}

// TestMergeCommand folds a PEFT folder into the tiny model and runs it.
func TestMergeCommand(t *testing.T) {
	root := testutil.RepoRoot(t)
	bin := filepath.Join(root, "bin", "qwen3-server")
	peft := filepath.Join(t.TempDir(), "peft")
	p := modelgen.RandomPEFT{Dims: modelgen.Dims{Layers: 2, Hidden: 64, QDim: 64, KVDim: 32, FFN: 192}, Rank: 4, Alpha: 8, DType: "BF16", Seed: 3, Scale: 0.2, Targets: []string{"q_proj", "down_proj"}}
	if err := p.Write(peft); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "merged.gguf")
	b, err := exec.Command(bin, "merge", "--base", testutil.Model(t, "tiny-random.gguf"), "--adapter", peft, "--out", out).CombinedOutput()
	if err != nil || !strings.Contains(string(b), "4/4 tensors") {
		t.Fatalf("merge: %v\n%s", err, b)
	}
	b, err = exec.Command(bin, "bench", "--model", out, "--gpu-layers", "0", "--parallel", "1", "--prompt-len", "8", "--gen-len", "4", "--batch-size", "64").CombinedOutput()
	if err != nil {
		t.Fatalf("merged model does not run: %v\n%s", err, b)
	}
}
