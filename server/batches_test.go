package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"go.uber.org/zap/zaptest"

	"github.com/qwen3-lora/qwen3-server/batch"
	"github.com/qwen3-lora/qwen3-server/configs"
	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/fake"
)

// batchServer serves e with the Batch API on a store in a temporary
// folder, its runner started on the server's Executor and ModelCheck.
func batchServer(t *testing.T, e engine.Engine, sc configs.ServerConfig, mutate func(*batch.Config), opts ...batch.Option) (*Server, *batch.Store) {
	t.Helper()
	cfg, _ := configs.Load(nil, nil)
	if sc.Addr == "" {
		sc.Addr = "127.0.0.1:0"
	}
	if sc.MaxBodyBytes == 0 {
		sc.MaxBodyBytes = 1 << 20
	}
	s := New(sc, cfg.Sampling, zaptest.NewLogger(t))
	s.SetEngine(e)
	return s, withBatches(t, s, mutate, opts...)
}

// withBatches turns the Batch API on for s (its engine set), on a store in
// a temporary folder with a fast poll.
func withBatches(t *testing.T, s *Server, mutate func(*batch.Config), opts ...batch.Option) *batch.Store {
	t.Helper()
	bc := batch.DefaultConfig()
	bc.DataDir = t.TempDir()
	bc.PollInterval = 20 * time.Millisecond
	if mutate != nil {
		mutate(&bc)
	}
	store, err := batch.Open(bc, zaptest.NewLogger(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	s.SetBatches(store)
	if err := store.Start(s.Executor(), s.ModelCheck()); err != nil {
		t.Fatal(err)
	}
	return store
}

// blockedFake is a fake engine whose every chunk waits for a send on block
// (or its close).
func blockedFake() (*fake.Engine, chan struct{}) {
	f := fake.New("x")
	f.Block = make(chan struct{})
	return f, f.Block
}

// chatLine is a batch input line of a chat request.
func chatLine(customID, model, content string) string {
	b, _ := json.Marshal(map[string]any{"custom_id": customID, "method": "POST", "url": "/v1/chat/completions",
		"body": map[string]any{"model": model, "messages": []any{map[string]string{"role": "user", "content": content}}}})
	return string(b)
}

// uploadForm is a multipart upload body of content.
func uploadForm(t *testing.T, purpose, name string, content []byte) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if purpose != "" {
		mw.WriteField("purpose", purpose)
	}
	fw, err := mw.CreateFormFile("file", name)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(content)
	mw.Close()
	return mw.FormDataContentType(), &buf
}

// call sends a request to s as key ("" = none) and decodes a JSON answer into out.
func call(t *testing.T, s *Server, key, method, path string, body io.Reader, contentType string, out any) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, body)
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if out != nil && w.Code == http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, w.Body)
		}
	}
	return w
}

func uploadFile(t *testing.T, s *Server, key string, lines []string) batch.File {
	t.Helper()
	ct, body := uploadForm(t, "batch", "in.jsonl", []byte(strings.Join(lines, "\n")+"\n"))
	var f batch.File
	if w := call(t, s, key, http.MethodPost, "/v1/files", body, ct, &f); w.Code != http.StatusOK {
		t.Fatalf("upload: %d %s", w.Code, w.Body)
	}
	return f
}

func startBatch(t *testing.T, s *Server, key, fileID, endpoint string) batch.Batch {
	t.Helper()
	var b batch.Batch
	body := fmt.Sprintf(`{"input_file_id":%q,"endpoint":%q,"completion_window":"24h","metadata":{"job":"test"}}`, fileID, endpoint)
	if w := call(t, s, key, http.MethodPost, "/v1/batches", strings.NewReader(body), "application/json", &b); w.Code != http.StatusOK {
		t.Fatalf("create batch: %d %s", w.Code, w.Body)
	}
	return b
}

// waitBatch polls the batch until cond holds.
func waitBatch(t *testing.T, s *Server, key, id string, what string, cond func(batch.Batch) bool) batch.Batch {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var b batch.Batch
		if w := call(t, s, key, http.MethodGet, "/v1/batches/"+id, nil, "", &b); w.Code != http.StatusOK {
			t.Fatalf("get batch: %d %s", w.Code, w.Body)
		}
		if cond(b) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for batch %s to be %s: %+v", id, what, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func terminal(b batch.Batch) bool { return b.Status.Terminal() }

// outputLines downloads a file and decodes its lines by custom_id,
// failing on a custom_id seen twice.
func outputLines(t *testing.T, s *Server, key string, id *string) map[string]batch.OutputLine {
	t.Helper()
	out := map[string]batch.OutputLine{}
	if id == nil {
		return out
	}
	w := call(t, s, key, http.MethodGet, "/v1/files/"+*id+"/content", nil, "", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("content of %s: %d %s", *id, w.Code, w.Body)
	}
	for _, l := range strings.Split(strings.TrimSpace(w.Body.String()), "\n") {
		if l == "" {
			continue
		}
		var o batch.OutputLine
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		if _, dup := out[o.CustomID]; dup {
			t.Fatalf("custom_id %s twice in %s", o.CustomID, *id)
		}
		out[o.CustomID] = o
	}
	return out
}

// A batch through the handlers: every line answered by the chat handler
// as a plain request would be, at low priority; a line the handler refuses
// goes to the error file with its status and body.
func TestBatchRunsLinesThroughHandlers(t *testing.T) {
	f := fake.New("Hello", " there")
	s, _ := batchServer(t, f, configs.ServerConfig{}, nil)
	lines := []string{chatLine("a", "fake-qwen3", "one"), chatLine("b", "fake-qwen3", "two"),
		`{"custom_id":"bad","method":"POST","url":"/v1/chat/completions","body":{"model":"fake-qwen3","messages":[{"role":"user","content":"x"}],"max_tokens":-5}}`,
		`{"custom_id":"streamed","method":"POST","url":"/v1/chat/completions","body":{"model":"fake-qwen3","messages":[{"role":"user","content":"x"}],"stream":true}}`}
	file := uploadFile(t, s, "", lines)
	b := startBatch(t, s, "", file.ID, "/v1/chat/completions")
	if b.Status != batch.StatusValidating || b.Metadata["job"] != "test" {
		t.Fatalf("created: %+v", b)
	}
	b = waitBatch(t, s, "", b.ID, "terminal", terminal)
	if b.Status != batch.StatusCompleted || b.RequestCounts != (batch.RequestCounts{Total: 4, Completed: 2, Failed: 2}) {
		t.Fatalf("finished: %+v", b)
	}
	out := outputLines(t, s, "", b.OutputFileID)
	errs := outputLines(t, s, "", b.ErrorFileID)
	if len(out) != 2 || len(errs) != 2 {
		t.Fatalf("output %v errors %v", out, errs)
	}
	// The same request over HTTP answers the same content.
	direct := post(t, s, `{"model":"fake-qwen3","messages":[{"role":"user","content":"one"}]}`)
	var want, got chatResult
	json.Unmarshal(direct.Body.Bytes(), &want)
	for _, id := range []string{"a", "b"} {
		o := out[id]
		if o.Response == nil || o.Response.StatusCode != 200 || o.Error != nil || o.Response.RequestID == "" {
			t.Fatalf("line %s: %+v", id, o)
		}
		if err := json.Unmarshal(o.Response.Body, &got); err != nil || deref(got.Choices[0].Message.Content) != deref(want.Choices[0].Message.Content) {
			t.Fatalf("line %s answered %s, HTTP answers %s", id, o.Response.Body, direct.Body)
		}
	}
	for id, param := range map[string]string{"bad": "max_tokens", "streamed": "stream"} {
		o := errs[id]
		var e struct {
			Error struct{ Param *string } `json:"error"`
		}
		if o.Response == nil || o.Response.StatusCode != 400 || json.Unmarshal(o.Response.Body, &e) != nil || e.Error.Param == nil || *e.Error.Param != param {
			t.Fatalf("line %s: want a 400 about %s, got %+v", id, param, o.Response)
		}
	}
	// Batch lines ran at low priority; the direct request did not.
	var low, interactive int
	for _, r := range f.Requests {
		switch r.Priority {
		case engine.PriorityLow:
			low++
		case engine.PriorityInteractive:
			interactive++
		}
	}
	if low != 2 || interactive != 1 {
		t.Fatalf("priorities: %d low, %d interactive; want 2 and 1", low, interactive)
	}
}

// The validation failures of issue 16, with the server's model resolution:
// each names its line.
func TestBatchValidationFailures(t *testing.T) {
	s, _ := batchServer(t, fake.New("x"), configs.ServerConfig{}, nil)
	lines := []string{
		chatLine("ok", "fake-qwen3", "fine"),
		`{not json`,
		chatLine("ok", "fake-qwen3", "again"),
		`{"custom_id":"get","method":"GET","url":"/v1/chat/completions","body":{}}`,
		`{"custom_id":"url","method":"POST","url":"/v1/completions","body":{}}`,
		chatLine("model", "no-such-model", "x"),
	}
	b := startBatch(t, s, "", uploadFile(t, s, "", lines).ID, "/v1/chat/completions")
	b = waitBatch(t, s, "", b.ID, "terminal", terminal)
	if b.Status != batch.StatusFailed || b.Errors == nil {
		t.Fatalf("want failed with errors: %+v", b)
	}
	want := map[int]string{2: batch.CodeInvalidJSONLine, 3: batch.CodeDuplicateCustomID, 4: batch.CodeInvalidMethod, 5: batch.CodeInvalidURL, 6: batch.CodeModelNotFound}
	got := map[int]string{}
	for _, e := range b.Errors.Data {
		if e.Line != nil {
			got[*e.Line] = e.Code
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("errors by line %v, want %v (%+v)", got, want, b.Errors.Data)
	}
	// A create that names no file, or a bad endpoint, fails at once.
	for _, body := range []string{`{"input_file_id":"file-nope","endpoint":"/v1/chat/completions","completion_window":"24h"}`,
		`{"input_file_id":"../../etc/passwd","endpoint":"/v1/chat/completions","completion_window":"24h"}`} {
		if w := call(t, s, "", http.MethodPost, "/v1/batches", strings.NewReader(body), "application/json", nil); w.Code != http.StatusNotFound && w.Code != http.StatusBadRequest {
			t.Fatalf("%s: %d %s", body, w.Code, w.Body)
		}
	}
	f := uploadFile(t, s, "", lines[:1])
	for _, body := range []string{fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/embeddings","completion_window":"24h"}`, f.ID),
		fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"1h"}`, f.ID), `{"input_file_id":`} {
		w := call(t, s, "", http.MethodPost, "/v1/batches", strings.NewReader(body), "application/json", nil)
		var e struct {
			Error struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if w.Code != http.StatusBadRequest || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error.Type != "invalid_request_error" || e.Error.Message == "" {
			t.Fatalf("%s: want a 400 in OpenAI's shape, got %d %s", body, w.Code, w.Body)
		}
	}
}

// Uploads have the batch limits, not server.max_body_bytes: a file over
// the body limit but under batch.max_file_bytes is stored; over the file
// limit is a 413 file_too_large, over the line limit a 400 too_many_lines.
func TestUploadLimits(t *testing.T) {
	s, _ := batchServer(t, fake.New("x"), configs.ServerConfig{MaxBodyBytes: 1024}, func(c *batch.Config) {
		c.MaxFileBytes = 64 << 10
		c.MaxFileLines = 100
	})
	line := chatLine("c", "fake-qwen3", strings.Repeat("word ", 100))
	var lines []string
	for i := range 60 { // ~30 KB: over the body limit, under the file limit
		lines = append(lines, strings.Replace(line, `"c"`, fmt.Sprintf(`"c%d"`, i), 1))
	}
	content := []byte(strings.Join(lines, "\n") + "\n")
	ct, body := uploadForm(t, "batch", "big.jsonl", content)
	var f batch.File
	if w := call(t, s, "", http.MethodPost, "/v1/files", body, ct, &f); w.Code != http.StatusOK || f.Bytes != int64(len(content)) || f.Filename != "big.jsonl" || f.Purpose != "batch" {
		t.Fatalf("upload over max_body_bytes: %d %s", w.Code, w.Body)
	}
	// The content comes back as stored, as JSONL, not to be sniffed.
	w := call(t, s, "", http.MethodGet, "/v1/files/"+f.ID+"/content", nil, "", nil)
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), content) || w.Header().Get("Content-Type") != "application/jsonl" || w.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("content: %d %q %v", w.Code, w.Header().Get("Content-Type"), bytes.Equal(w.Body.Bytes(), content))
	}
	// Other routes keep the body limit.
	if w := call(t, s, "", http.MethodPost, "/v1/batches", strings.NewReader(`{"metadata":{"x":"`+strings.Repeat("y", 2048)+`"}}`), "application/json", nil); w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("POST /v1/batches over max_body_bytes: %d %s", w.Code, w.Body)
	}
	cases := []struct {
		name, purpose string
		content       []byte
		status        int
		code          string
	}{
		{"far over the byte limit", "batch", append(bytes.Repeat([]byte("x"), 256<<10), '\n'), http.StatusRequestEntityTooLarge, batch.CodeFileTooLarge},
		{"just over the byte limit", "batch", append(bytes.Repeat([]byte("x"), 64<<10), '\n'), http.StatusRequestEntityTooLarge, batch.CodeFileTooLarge},
		{"over the line limit", "batch", []byte(strings.Repeat("{}\n", 101)), http.StatusBadRequest, batch.CodeTooManyLines},
		{"wrong purpose", "fine-tune", content[:100], http.StatusBadRequest, ""},
		{"no purpose", "", content[:100], http.StatusBadRequest, ""},
	}
	for _, c := range cases {
		ct, body := uploadForm(t, c.purpose, "f.jsonl", c.content)
		w := call(t, s, "", http.MethodPost, "/v1/files", body, ct, nil)
		var e struct {
			Error struct {
				Code *string `json:"code"`
			} `json:"error"`
		}
		json.Unmarshal(w.Body.Bytes(), &e)
		if w.Code != c.status || (c.code != "" && (e.Error.Code == nil || *e.Error.Code != c.code)) {
			t.Errorf("%s: %d %s, want %d %s", c.name, w.Code, w.Body, c.status, c.code)
		}
	}
	if w := call(t, s, "", http.MethodPost, "/v1/files", strings.NewReader(`{"purpose":"batch"}`), "application/json", nil); w.Code != http.StatusBadRequest {
		t.Fatalf("a JSON upload: %d %s", w.Code, w.Body)
	}
	var list batch.List[batch.File]
	if w := call(t, s, "", http.MethodGet, "/v1/files", nil, "", &list); w.Code != 200 || len(list.Data) != 1 {
		t.Fatalf("only the one good upload is kept: %d %s", w.Code, w.Body)
	}
}

// With API keys, another key's files and batches are not found (404, not
// 403), and ids cannot name paths.
func TestBatchCrossKeyIsolation(t *testing.T) {
	f, block := blockedFake()
	defer close(block)
	s, _ := batchServer(t, f, configs.ServerConfig{APIKeys: []string{"key-a", "key-b"}}, nil)
	file := uploadFile(t, s, "key-a", []string{chatLine("1", "fake-qwen3", "hi")})
	b := startBatch(t, s, "key-a", file.ID, "/v1/chat/completions")
	for _, p := range []struct{ method, path string }{
		{http.MethodGet, "/v1/files/" + file.ID}, {http.MethodGet, "/v1/files/" + file.ID + "/content"},
		{http.MethodDelete, "/v1/files/" + file.ID}, {http.MethodGet, "/v1/batches/" + b.ID},
		{http.MethodPost, "/v1/batches/" + b.ID + "/cancel"},
		{http.MethodGet, "/v1/files/..%2F..%2Fbatch.db/content"}, {http.MethodGet, "/v1/files/file-..%2Flock"},
	} {
		w := call(t, s, "key-b", p.method, p.path, nil, "", nil)
		if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), `"error"`) {
			t.Errorf("key-b %s %s: %d %s, want 404", p.method, p.path, w.Code, w.Body)
		}
	}
	body := fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, file.ID)
	if w := call(t, s, "key-b", http.MethodPost, "/v1/batches", strings.NewReader(body), "application/json", nil); w.Code != http.StatusNotFound {
		t.Errorf("key-b batches key-a's file: %d %s", w.Code, w.Body)
	}
	for _, path := range []string{"/v1/files", "/v1/batches"} {
		var l batch.List[json.RawMessage]
		if w := call(t, s, "key-b", http.MethodGet, path, nil, "", &l); w.Code != 200 || len(l.Data) != 0 {
			t.Errorf("key-b lists %s: %d %s", path, w.Code, w.Body)
		}
		if w := call(t, s, "key-a", http.MethodGet, path, nil, "", &l); w.Code != 200 || len(l.Data) != 1 {
			t.Errorf("key-a lists %s: %d %s", path, w.Code, w.Body)
		}
		if w := call(t, s, "", http.MethodGet, path, nil, "", nil); w.Code != http.StatusUnauthorized {
			t.Errorf("no key lists %s: %d", path, w.Code)
		}
	}
	if w := call(t, s, "key-a", http.MethodGet, "/v1/batches/"+b.ID, nil, "", nil); w.Code != 200 {
		t.Fatalf("key-a reads its batch: %d", w.Code)
	}
}

// Cancel: running lines end, finished ones are kept, the rest never run.
func TestBatchCancel(t *testing.T) {
	f, block := blockedFake()
	s, _ := batchServer(t, f, configs.ServerConfig{}, func(c *batch.Config) { c.MaxConcurrency = 1 })
	var lines []string
	for i := range 5 {
		lines = append(lines, chatLine(fmt.Sprint(i), "fake-qwen3", "hi"))
	}
	b := startBatch(t, s, "", uploadFile(t, s, "", lines).ID, "/v1/chat/completions")
	select { // the first line's one chunk: it completes
	case block <- struct{}{}:
	case <-time.After(10 * time.Second):
		t.Fatal("no line started")
	}
	waitBatch(t, s, "", b.ID, "one line done", func(b batch.Batch) bool { return b.RequestCounts.Completed == 1 })
	var c batch.Batch
	if w := call(t, s, "", http.MethodPost, "/v1/batches/"+b.ID+"/cancel", nil, "", &c); w.Code != 200 || (c.Status != batch.StatusCancelling && c.Status != batch.StatusCancelled) {
		t.Fatalf("cancel: %d %s", w.Code, w.Body)
	}
	b = waitBatch(t, s, "", b.ID, "terminal", terminal)
	if b.Status != batch.StatusCancelled || b.RequestCounts.Completed != 1 {
		t.Fatalf("cancelled: %+v", b)
	}
	if out := outputLines(t, s, "", b.OutputFileID); len(out) != 1 || out["0"].Response == nil {
		t.Fatalf("the partial result is kept: %v", out)
	}
	if w := call(t, s, "", http.MethodPost, "/v1/batches/"+b.ID+"/cancel", nil, "", nil); w.Code != http.StatusConflict {
		t.Fatalf("cancel a cancelled batch: %d %s", w.Code, w.Body)
	}
}

// Expiry, on a short window (whole seconds: the API's times are Unix
// seconds): lines not run by then are batch_expired in the error file.
func TestBatchExpires(t *testing.T) {
	f, block := blockedFake()
	defer close(block)
	s, _ := batchServer(t, f, configs.ServerConfig{}, func(c *batch.Config) { c.MaxConcurrency = 1 }, batch.WithCompletionWindow(2*time.Second))
	b := startBatch(t, s, "", uploadFile(t, s, "", []string{chatLine("1", "fake-qwen3", "a"), chatLine("2", "fake-qwen3", "b")}).ID, "/v1/chat/completions")
	b = waitBatch(t, s, "", b.ID, "terminal", terminal)
	if b.Status != batch.StatusExpired || b.RequestCounts.Failed != 2 {
		t.Fatalf("expired: %+v", b)
	}
	for id, o := range outputLines(t, s, "", b.ErrorFileID) {
		if o.Error == nil || o.Error.Code != "batch_expired" {
			t.Fatalf("line %s: %+v", id, o)
		}
	}
}

// overloaded refuses its first n generations as the real engine does when
// its queue is full.
type overloaded struct {
	*fake.Engine
	refuse atomic.Int32
}

func (o *overloaded) Generate(ctx context.Context, req *engine.Request, fn func(engine.Chunk) error) (*engine.Result, error) {
	if o.refuse.Add(-1) >= 0 {
		return nil, engine.ErrOverloaded
	}
	return o.Engine.Generate(ctx, req, fn)
}

// An overloaded engine (503) is not a line's answer: the line runs later.
func TestBatchOverloadedRunsLater(t *testing.T) {
	e := &overloaded{Engine: fake.New("ok")}
	e.refuse.Store(3)
	s, _ := batchServer(t, e, configs.ServerConfig{}, nil)
	b := startBatch(t, s, "", uploadFile(t, s, "", []string{chatLine("1", "fake-qwen3", "a"), chatLine("2", "fake-qwen3", "b")}).ID, "/v1/chat/completions")
	b = waitBatch(t, s, "", b.ID, "terminal", terminal)
	if b.Status != batch.StatusCompleted || b.RequestCounts.Completed != 2 || e.refuse.Load() >= 0 {
		t.Fatalf("%+v (refusals left %d)", b, e.refuse.Load())
	}
}

// Without batch.data_dir the routes say the API is off.
func TestBatchAPIOff(t *testing.T) {
	s := fakeServer(fake.New("x"))
	for _, p := range []string{"/v1/files", "/v1/batches", "/v1/batches/batch_x"} {
		w := get(t, s, p)
		if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "batch.data_dir") {
			t.Errorf("%s: %d %s", p, w.Code, w.Body)
		}
	}
}

// The official Go SDK: files.create → batches.create → poll → download,
// and the list pages.
func TestBatchGoSDK(t *testing.T) {
	s, _ := batchServer(t, fake.New("Hi"), configs.ServerConfig{APIKeys: []string{"sk-test"}}, nil)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	client := openai.NewClient(option.WithBaseURL(ts.URL+"/v1"), option.WithAPIKey("sk-test"), option.WithMaxRetries(0))
	ctx := context.Background()
	input := chatLine("x", "fake-qwen3", "a") + "\n" + chatLine("y", "fake-qwen3", "b") + "\n"
	file, err := client.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader(input), "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 3 {
		b, err := client.Batches.New(ctx, openai.BatchNewParams{InputFileID: file.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
			CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, b.ID)
	}
	var done *openai.Batch
	for deadline := time.Now().Add(20 * time.Second); ; {
		if done, err = client.Batches.Get(ctx, ids[0]); err != nil {
			t.Fatal(err)
		}
		if done.Status == openai.BatchStatusCompleted || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if done.Status != openai.BatchStatusCompleted || done.RequestCounts.Completed != 2 || done.OutputFileID == "" {
		t.Fatalf("%+v", done)
	}
	resp, err := client.Files.Content(ctx, done.OutputFileID)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var seen []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var o struct {
			CustomID string `json:"custom_id"`
			Response struct {
				StatusCode int                   `json:"status_code"`
				Body       openai.ChatCompletion `json:"body"`
			} `json:"response"`
		}
		if err := json.Unmarshal([]byte(l), &o); err != nil || o.Response.StatusCode != 200 || o.Response.Body.Model != "fake-qwen3" || o.Response.Body.Choices[0].FinishReason != "stop" {
			t.Fatalf("output line %s: %v", l, err)
		}
		seen = append(seen, o.CustomID)
	}
	slices.Sort(seen)
	if fmt.Sprint(seen) != "[x y]" {
		t.Fatalf("custom_ids %v", seen)
	}
	// Pages of one: newest first, after = the last id of the page before.
	page, err := client.Batches.List(ctx, openai.BatchListParams{Limit: openai.Int(1)})
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != ids[2] || !page.HasMore {
		t.Fatalf("first page %+v %v", page, err)
	}
	page, err = client.Batches.List(ctx, openai.BatchListParams{Limit: openai.Int(2), After: openai.String(ids[2])})
	if err != nil || len(page.Data) != 2 || page.Data[0].ID != ids[1] || page.Data[1].ID != ids[0] || page.HasMore {
		t.Fatalf("second page %+v %v", page, err)
	}
	if _, err := client.Files.Delete(ctx, file.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Files.Get(ctx, file.ID); err == nil {
		t.Fatal("a deleted file is still there")
	}
}
