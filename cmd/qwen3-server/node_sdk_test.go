package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qwen3-lora/qwen3-server/internal/testutil"
)

// syncBuffer is a bytes.Buffer safe for a process writing while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startBinary runs the built bin/qwen3-server serve with args on a free
// loopback port, waits until /health answers 200, and stops it (SIGTERM)
// when the test ends. It returns the address and the server's log.
func startBinary(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	addr, _, logs := startBinaryEnv(t, nil, args...)
	return addr, logs
}

// startBinaryEnv is startBinary with env added to the server's bare
// environment, and the process (for tests that kill it).
func startBinaryEnv(t *testing.T, env []string, args ...string) (string, *exec.Cmd, *syncBuffer) {
	t.Helper()
	root := testutil.RepoRoot(t)
	addr := freeAddr(t)
	logs := &syncBuffer{}
	srv := exec.Command(filepath.Join(root, "bin", "qwen3-server"), append([]string{"serve", "--addr", addr}, args...)...)
	srv.Stdout, srv.Stderr = logs, logs
	srv.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get("http://" + addr + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return addr, srv, logs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nodeTest runs `node --test file` in tests/<dir> with env added, after
// checking that `make testdata` installed the package it needs.
func nodeTest(t *testing.T, dir, file, needs string, env ...string) string {
	t.Helper()
	dir = filepath.Join(testutil.RepoRoot(t), "tests", dir)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", needs)); err != nil {
		t.Fatalf("%s is not installed: `make testdata` runs npm ci in %s", needs, dir)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: install Node.js (see README)")
	}
	cmd := exec.Command(node, "--test", file)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s failed: %v\n%s", file, err, out)
	}
	return string(out)
}

// TestNodeSDK runs tests/node/sdk.test.mjs — the official OpenAI Node SDK —
// against the built binary serving the chain model.
func TestNodeSDK(t *testing.T) {
	addr, logs := startBinary(t, "--model", testutil.Model(t, "tiny-chain.gguf"), "--gpu-layers", "0", "--ctx-size", "256", "--parallel", "3")
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	}()
	t.Logf("%s", nodeTest(t, "node", "sdk.test.mjs", "openai", "BASE_URL=http://"+addr+"/v1"))
}

// TestNodeSDKBatches runs tests/node/batch.test.mjs — the Batch API through
// the official Node SDK — against the built binary with two API keys.
func TestNodeSDKBatches(t *testing.T) {
	addr, logs := startBinary(t, "--model", testutil.Model(t, "tiny-chain.gguf"), "--gpu-layers", "0", "--ctx-size", "256", "--parallel", "2",
		"--api-key", "test-key", "--api-key", "other-key", "--batch-dir", t.TempDir())
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	}()
	t.Logf("%s", nodeTest(t, "node", "batch.test.mjs", "openai", "BASE_URL=http://"+addr+"/v1"))
}
