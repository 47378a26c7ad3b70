package main

import (
	"bytes"
	"encoding/json"
	"fmt"
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
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit after SIGTERM\n%s", logs.String())
	}
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
