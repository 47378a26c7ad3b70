package bench

// The batch measurements (issue 16's targets): interactive time to first
// token idle and while a large batch runs (target: within 1.5×), and batch
// lines' throughput on an idle server against the same number of plain
// concurrent requests (target: at least 0.9×). Everything goes through the
// server's HTTP API, as a user's batch and chat would.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"time"
)

// BatchJob is a batch of /v1/completions lines, one per prompt, each
// generating GenLen tokens (end-of-generation ignored).
type BatchJob struct {
	BaseURL string // http://host:port/v1
	Model   string
	Prompts []string
	GenLen  int
}

// body is one request's body, the same for a batch line and a plain request.
func (j BatchJob) body(prompt string) map[string]any {
	return map[string]any{"model": j.Model, "prompt": prompt, "max_tokens": j.GenLen, "ignore_eos": true}
}

// BatchThroughput is a run of a job: wall time and completion tokens.
type BatchThroughput struct {
	Lines   int
	Tokens  int
	Elapsed time.Duration
}

// TokensPerSecond over the whole run.
func (t BatchThroughput) TokensPerSecond() float64 { return float64(t.Tokens) / t.Elapsed.Seconds() }

func postJSON(ctx context.Context, url string, body any, out any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	return doJSON(req, out)
}

func doJSON(req *http.Request, out any) error {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: HTTP %d: %s", req.Method, req.URL.Path, resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

type batchStatus struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	OutputFileID  string `json:"output_file_id"`
	RequestCounts struct {
		Total, Completed, Failed int
	} `json:"request_counts"`
}

// StartBatch uploads the job's lines and creates the batch; it returns the
// batch id.
func StartBatch(ctx context.Context, j BatchJob) (string, error) {
	var in bytes.Buffer
	for i, p := range j.Prompts {
		line, _ := json.Marshal(map[string]any{"custom_id": fmt.Sprint(i), "method": "POST", "url": "/v1/completions", "body": j.body(p)})
		in.Write(append(line, '\n'))
	}
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	mw.WriteField("purpose", "batch")
	fw, _ := mw.CreateFormFile("file", "bench.jsonl")
	fw.Write(in.Bytes())
	mw.Close()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, j.BaseURL+"/files", &form)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	var file struct{ ID string }
	if err := doJSON(req, &file); err != nil {
		return "", err
	}
	var b batchStatus
	err := postJSON(ctx, j.BaseURL+"/batches", map[string]string{"input_file_id": file.ID, "endpoint": "/v1/completions", "completion_window": "24h"}, &b)
	return b.ID, err
}

func getBatch(ctx context.Context, baseURL, id string) (batchStatus, error) {
	var b batchStatus
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/batches/"+id, nil)
	return b, doJSON(req, &b)
}

// WaitRunning waits until the batch has lines done (so that it is past
// validation and its lines fill the slots they may take).
func WaitRunning(ctx context.Context, baseURL, id string) error {
	for {
		b, err := getBatch(ctx, baseURL, id)
		if err != nil {
			return err
		}
		if b.RequestCounts.Completed > 0 {
			return nil
		}
		if b.Status != "validating" && b.Status != "in_progress" {
			return fmt.Errorf("batch %s is %s before any line ran", id, b.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// CancelBatch cancels a batch (the end of the TTFT-under-load run).
func CancelBatch(ctx context.Context, baseURL, id string) error {
	return postJSON(ctx, baseURL+"/batches/"+id+"/cancel", nil, nil)
}

// RunBatch runs the job as one batch and waits for it: wall time from the
// upload to completed, tokens from the output file's usage.
func RunBatch(ctx context.Context, j BatchJob) (BatchThroughput, error) {
	start := time.Now()
	id, err := StartBatch(ctx, j)
	if err != nil {
		return BatchThroughput{}, err
	}
	var b batchStatus
	for {
		if b, err = getBatch(ctx, j.BaseURL, id); err != nil {
			return BatchThroughput{}, err
		}
		if b.Status == "completed" {
			break
		}
		if b.Status != "validating" && b.Status != "in_progress" && b.Status != "finalizing" {
			return BatchThroughput{}, fmt.Errorf("batch %s ended %s", id, b.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	res := BatchThroughput{Lines: len(j.Prompts), Elapsed: time.Since(start)}
	if b.RequestCounts.Failed > 0 {
		return res, fmt.Errorf("batch %s: %d lines failed", id, b.RequestCounts.Failed)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, j.BaseURL+"/files/"+b.OutputFileID+"/content", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var o struct {
			Response struct {
				Body struct{ Usage usage } `json:"body"`
			} `json:"response"`
		}
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			return res, fmt.Errorf("output line: %w", err)
		}
		res.Tokens += o.Response.Body.Usage.CompletionTokens
	}
	return res, nil
}

type usage struct {
	CompletionTokens int `json:"completion_tokens"`
}

// RunPlain runs the same requests as plain non-streaming /v1/completions
// calls, concurrency at a time: what a client script would do instead.
func RunPlain(ctx context.Context, j BatchJob, concurrency int) (BatchThroughput, error) {
	start := time.Now()
	next := make(chan string)
	go func() {
		defer close(next)
		for _, p := range j.Prompts {
			select {
			case next <- p:
			case <-ctx.Done():
				return
			}
		}
	}()
	var mu sync.Mutex
	res := BatchThroughput{Lines: len(j.Prompts)}
	var firstErr error
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				var out struct{ Usage usage }
				err := postJSON(ctx, j.BaseURL+"/completions", j.body(p), &out)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				res.Tokens += out.Usage.CompletionTokens
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res, firstErr
}
