package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qwen3-lora/qwen3-server/batch"
	"github.com/qwen3-lora/qwen3-server/internal/testutil"
)

// batchState is what these tests read of a Batch object.
type batchState struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	OutputFileID  string `json:"output_file_id"`
	ErrorFileID   string `json:"error_file_id"`
	RequestCounts struct {
		Total, Completed, Failed int
	} `json:"request_counts"`
}

func apiDo(t *testing.T, method, url, contentType string, body io.Reader) []byte {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	return b
}

func getBatch(t *testing.T, addr, id string) batchState {
	t.Helper()
	var b batchState
	if err := json.Unmarshal(apiDo(t, http.MethodGet, "http://"+addr+"/v1/batches/"+id, "", nil), &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBatchSurvivesKill: kill -9 the real server mid-batch, start it again
// on the same data folder: the batch completes and every custom_id is in
// the output exactly once, each with a full answer.
func TestBatchSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	model := testutil.Model(t, "tiny-random.gguf")
	args := []string{"--model", model, "--gpu-layers", "0", "--ctx-size", "512", "--parallel", "2", "--batch-dir", dir}
	env := []string{"QWEN3_BATCH_POLL_INTERVAL=100ms", "QWEN3_BATCH_MAX_CONCURRENCY=2"}
	addr, cmd, logs := startBinaryEnv(t, env, args...)

	const lines, tokens = 20, 16
	var in strings.Builder
	for i := range lines {
		fmt.Fprintf(&in, `{"custom_id":"req-%d","method":"POST","url":"/v1/completions","body":{"model":"tiny-random","prompt":"Line %d:","max_tokens":%d,"ignore_eos":true}}`+"\n", i, i, tokens)
	}
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	mw.WriteField("purpose", "batch")
	fw, _ := mw.CreateFormFile("file", "in.jsonl")
	fw.Write([]byte(in.String()))
	mw.Close()
	var file struct{ ID string }
	json.Unmarshal(apiDo(t, http.MethodPost, "http://"+addr+"/v1/files", mw.FormDataContentType(), &form), &file)
	var b batchState
	json.Unmarshal(apiDo(t, http.MethodPost, "http://"+addr+"/v1/batches", "application/json",
		strings.NewReader(`{"input_file_id":"`+file.ID+`","endpoint":"/v1/completions","completion_window":"24h"}`)), &b)

	deadline := time.Now().Add(60 * time.Second)
	for {
		b = getBatch(t, addr, b.ID)
		if b.RequestCounts.Completed >= 1 {
			break
		}
		if b.Status != "validating" && b.Status != "in_progress" || time.Now().After(deadline) {
			t.Fatalf("batch before the kill: %+v\n%s", b, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown code runs
		t.Fatal(err)
	}
	cmd.Wait()
	if b.RequestCounts.Completed >= lines {
		t.Fatalf("the batch finished before the kill (%+v): make the lines longer", b)
	}
	t.Logf("killed with %d of %d lines done", b.RequestCounts.Completed, lines)

	addr2, _, logs2 := startBinaryEnv(t, env, args...)
	deadline = time.Now().Add(240 * time.Second)
	for {
		b = getBatch(t, addr2, b.ID)
		if b.Status == "completed" {
			break
		}
		if b.Status != "in_progress" && b.Status != "finalizing" || time.Now().After(deadline) {
			t.Fatalf("batch after the restart: %+v\n%s", b, logs2)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b.RequestCounts.Total != lines || b.RequestCounts.Completed != lines || b.RequestCounts.Failed != 0 || b.ErrorFileID != "" {
		t.Fatalf("counts after the restart: %+v", b)
	}
	out := apiDo(t, http.MethodGet, "http://"+addr2+"/v1/files/"+b.OutputFileID+"/content", "", nil)
	seen := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var o struct {
			CustomID string `json:"custom_id"`
			Response struct {
				StatusCode int `json:"status_code"`
				Body       struct {
					Usage struct {
						CompletionTokens int `json:"completion_tokens"`
					} `json:"usage"`
				} `json:"body"`
			} `json:"response"`
		}
		if err := json.Unmarshal([]byte(l), &o); err != nil || o.Response.StatusCode != 200 || o.Response.Body.Usage.CompletionTokens != tokens {
			t.Fatalf("output line %s: %v", l, err)
		}
		seen[o.CustomID]++
	}
	for i := range lines {
		if id := fmt.Sprintf("req-%d", i); seen[id] != 1 {
			t.Errorf("%s appears %d times", id, seen[id])
		}
	}
	if len(seen) != lines {
		t.Errorf("%d custom_ids in the output, want %d", len(seen), lines)
	}
	if !strings.Contains(logs2.String(), "batch runner started") {
		t.Errorf("the restarted server did not start the runner:\n%s", logs2)
	}
}

// run-batch: vLLM's offline format through files and through stdin and
// stdout; a line a handler refuses is an answered line (400), an invalid
// input fails the run naming the line.
func TestRunBatch(t *testing.T) {
	bin := filepath.Join(testutil.RepoRoot(t), "bin", "qwen3-server")
	model := []string{"--model", testutil.Model(t, "tiny-random.gguf"), "--gpu-layers", "0", "--ctx-size", "256", "--parallel", "2"}
	input := `{"custom_id":"a","method":"POST","url":"/v1/completions","body":{"model":"tiny-random","prompt":"Hi","max_tokens":3}}
{"custom_id":"b","method":"POST","url":"/v1/completions","body":{"model":"tiny-random","prompt":"Yo","max_tokens":-1}}

{"custom_id":"c","method":"POST","url":"/v1/completions","body":{"model":"tiny-random","prompt":["x","y"],"max_tokens":2}}
`
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl")
	os.WriteFile(in, []byte(input), 0o644)
	check := func(what string, data []byte) {
		t.Helper()
		status := map[string]int{}
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var o struct {
				ID       string `json:"id"`
				CustomID string `json:"custom_id"`
				Response struct {
					StatusCode int `json:"status_code"`
					Body       struct {
						Choices []json.RawMessage `json:"choices"`
					} `json:"body"`
				} `json:"response"`
			}
			if err := json.Unmarshal([]byte(l), &o); err != nil || !strings.HasPrefix(o.ID, "batch_req_") {
				t.Fatalf("%s: line %s: %v", what, l, err)
			}
			if _, dup := status[o.CustomID]; dup {
				t.Fatalf("%s: %s twice", what, o.CustomID)
			}
			status[o.CustomID] = o.Response.StatusCode
			if o.CustomID == "c" && len(o.Response.Body.Choices) != 2 {
				t.Fatalf("%s: a prompt array gives a choice per prompt: %s", what, l)
			}
		}
		if fmt.Sprint(status) != "map[a:200 b:400 c:200]" {
			t.Fatalf("%s: statuses %v", what, status)
		}
	}
	cmd := exec.Command(bin, append([]string{"run-batch", "-i", in, "-o", out}, model...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("run-batch: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "] 3/3") || !strings.Contains(stderr.String(), "3 requests: 2 succeeded, 1 failed") {
		t.Errorf("no progress bar or summary on stderr:\n%s", stderr.String())
	}
	data, _ := os.ReadFile(out)
	check("files", data)

	cmd = exec.Command(bin, append([]string{"run-batch", "-i", "-", "-o", "-", "--no-progress"}, model...)...)
	cmd.Stdin = strings.NewReader(input)
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("run-batch on stdin/stdout: %v", err)
	}
	check("stdin/stdout", stdout)

	bad := input + `{"custom_id":"a","method":"POST","url":"/v1/completions","body":{"model":"tiny-random","prompt":"dup"}}` + "\n"
	cmd = exec.Command(bin, append([]string{"run-batch", "-i", "-", "-o", filepath.Join(dir, "bad.jsonl")}, model...)...)
	cmd.Stdin = strings.NewReader(bad)
	msg, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "line 5:") || !strings.Contains(string(msg), batch.CodeDuplicateCustomID) {
		t.Fatalf("a duplicate custom_id: want a failure naming line 5, got %v\n%s", err, msg)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.jsonl")); err == nil {
		t.Fatal("a failed run wrote an output file")
	}
}
