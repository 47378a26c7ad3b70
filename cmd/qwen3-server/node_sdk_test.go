package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/qwen3-lora/qwen3-server/internal/testutil"
)

// TestNodeSDK runs tests/node/sdk.test.mjs — the official OpenAI Node SDK —
// against the built binary serving the chain model.
func TestNodeSDK(t *testing.T) {
	root := testutil.RepoRoot(t)
	dir := filepath.Join(root, "tests", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai")); err != nil {
		t.Fatalf("the Node SDK is not installed: `make testdata` runs npm ci in %s", dir)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: install Node.js (see README)")
	}
	addr := freeAddr(t)
	var logs bytes.Buffer
	srv := exec.Command(filepath.Join(root, "bin", "qwen3-server"), "serve", "--model", testutil.Model(t, "tiny-chain.gguf"),
		"--gpu-layers", "0", "--addr", addr, "--ctx-size", "256", "--parallel", "3")
	srv.Stdout, srv.Stderr = &logs, &logs
	srv.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get("http://" + addr + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd := exec.Command(node, "--test", "sdk.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BASE_URL=http://"+addr+"/v1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node SDK tests failed: %v\n%s\nserver log:\n%s", err, out, logs.String())
	}
	t.Logf("%s", out)
}
