package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/qwen3-lora/qwen3-server/batch"
)

// One batch mixing the base model and an adapter (by name and as
// "base:adapter") on the real engine: every line answers what the same
// request over HTTP answers, and the adapter's lines are not the base's.
func TestBatchMixesBaseAndAdapter(t *testing.T) {
	s, _ := adapterServer(t)
	if w := do(s, "POST", "/v1/adapters", `{"name":"medical","path":"medical"}`); w.Code != 201 {
		t.Fatalf("load: %d %s", w.Code, w.Body)
	}
	withBatches(t, s, nil)
	body := func(model string) map[string]any {
		return map[string]any{"model": model, "prompt": "The patient has", "max_tokens": 8, "temperature": 0, "ignore_eos": true}
	}
	models := map[string]string{"base": "tiny-random", "adapter": "medical", "pair": "tiny-random:medical"}
	var lines []string
	for id, m := range models {
		b, _ := json.Marshal(map[string]any{"custom_id": id, "method": "POST", "url": "/v1/completions", "body": body(m)})
		lines = append(lines, string(b))
	}
	b := startBatch(t, s, "", uploadFile(t, s, "", lines).ID, "/v1/completions")
	b = waitBatch(t, s, "", b.ID, "terminal", terminal)
	if b.Status != batch.StatusCompleted || b.RequestCounts.Completed != 3 {
		t.Fatalf("%+v", b)
	}
	out := outputLines(t, s, "", b.OutputFileID)
	texts := map[string]string{}
	for id, m := range models {
		var got struct {
			Choices []struct{ Text string } `json:"choices"`
		}
		if err := json.Unmarshal(out[id].Response.Body, &got); err != nil || len(got.Choices) != 1 {
			t.Fatalf("line %s: %s", id, out[id].Response.Body)
		}
		direct, _ := json.Marshal(body(m))
		want, code := completionText(t, s, string(direct))
		if code != http.StatusOK || got.Choices[0].Text != want {
			t.Fatalf("line %s (%s): batch %q, HTTP %d %q", id, m, got.Choices[0].Text, code, want)
		}
		texts[id] = want
	}
	if texts["adapter"] != texts["pair"] || texts["adapter"] == texts["base"] {
		t.Fatalf("texts %s", fmt.Sprint(texts))
	}
}
