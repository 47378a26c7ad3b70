package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/qwen3-lora/qwen3-server/adapters"
	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/fake"
)

// handleLoader loads every adapter as a handle of its own, so that the
// registry can tell them apart in the engine's Stats.
type handleLoader struct{}

type handle struct{ path string }

func (*handle) Close() {}

func (handleLoader) LoadAdapter(path string) (engine.Adapter, error) { return &handle{path}, nil }

// scrape parses /metrics with Prometheus' own text-format parser (strict:
// legacy names, as Prometheus 2 scrapers read them).
func scrape(t *testing.T, s *Server) map[string]*dto.MetricFamily {
	t.Helper()
	w := do(s, "GET", "/metrics", "")
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: %d %s", w.Code, w.Header())
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(w.Body.String()))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, w.Body)
	}
	return fams
}

// gauge is the one sample of a gauge family, with its labels.
func gauge(t *testing.T, fams map[string]*dto.MetricFamily, name string) (float64, map[string]string) {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no %s", name)
	}
	if f.GetType() != dto.MetricType_GAUGE || len(f.Metric) != 1 {
		t.Fatalf("%s: type %v with %d samples, want one gauge", name, f.GetType(), len(f.Metric))
	}
	labels := map[string]string{}
	for _, l := range f.Metric[0].Label {
		labels[l.GetName()] = l.GetValue()
	}
	return f.Metric[0].GetGauge().GetValue(), labels
}

func waitStats(t *testing.T, f *fake.Engine, what string, ok func(engine.Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok(f.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %+v", what, f.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

// The GIE model-server protocol's gauges while requests for two adapters
// run and wait: vLLM's names, gauge types, the labels and values the
// endpoint picker reads.
func TestGIEMetrics(t *testing.T) {
	f := fake.New("a", "b")
	f.Model.Parallel, f.MaxRunning = 2, 2
	f.Block = make(chan struct{})
	s := fakeServer(f)

	// Before any adapter: the queue and KV gauges, no LoRA metric.
	fams := scrape(t, s)
	for _, name := range []string{"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc"} {
		if v, _ := gauge(t, fams, name); v != 0 {
			t.Errorf("%s idle: %g", name, v)
		}
	}
	if v, l := gauge(t, fams, "vllm:cache_config_info"); v != 1 || l["block_size"] != "1" || l["num_gpu_blocks"] != strconv.Itoa(4096*2) || len(l) != 2 {
		t.Errorf("vllm:cache_config_info %g %v", v, l)
	}
	reg, err := adapters.NewRegistry(handleLoader{}, []string{adapterFolder(t, "alpha", "beta", "gamma")}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	reg.MaxLoaded = 5
	s.SetAdapters(reg)
	if _, ok := scrape(t, s)["vllm:lora_requests_info"]; ok {
		t.Fatal("vllm:lora_requests_info before any adapter was loaded")
	}
	for _, n := range []string{"alpha", "beta", "gamma"} {
		if _, err := reg.Load(n, n+".gguf", 1); err != nil {
			t.Fatal(err)
		}
	}
	before := time.Now()
	v, l := gauge(t, scrape(t, s), "vllm:lora_requests_info")
	if l["max_lora"] != "5" || l["running_lora_adapters"] != "" || l["waiting_lora_adapters"] != "" || len(l) != 3 {
		t.Fatalf("idle lora labels %v", l)
	}
	idleStamp := v

	// Two slots: alpha and the base model run; beta and alpha wait.
	var wg sync.WaitGroup
	codes := make([]int, 4)
	for i, c := range []struct {
		model string
		ok    func(engine.Stats) bool
	}{
		{"alpha", func(st engine.Stats) bool { return st.BusySlots == 1 }},
		{"", func(st engine.Stats) bool { return st.BusySlots == 2 }},
		{"beta", func(st engine.Stats) bool { return st.QueueDepth == 1 }},
		{"alpha", func(st engine.Stats) bool { return st.QueueDepth == 2 }},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = do(s, "POST", "/v1/chat/completions", fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"one two three"}]}`, c.model)).Code
		}()
		waitStats(t, f, fmt.Sprintf("request %d (%q)", i, c.model), c.ok)
	}
	time.Sleep(2 * time.Millisecond) // the timestamp below must move
	fams = scrape(t, s)
	if v, _ := gauge(t, fams, "vllm:num_requests_waiting"); v != 2 {
		t.Errorf("waiting %g, want 2", v)
	}
	if v, _ := gauge(t, fams, "vllm:num_requests_running"); v != 2 {
		t.Errorf("running %g, want 2", v)
	}
	st := f.Stats()
	if v, _ := gauge(t, fams, "vllm:kv_cache_usage_perc"); st.KVCellsUsed == 0 || v != float64(st.KVCellsUsed)/float64(4096*2) {
		t.Errorf("kv usage %g, the engine holds %d of %d cells", v, st.KVCellsUsed, 4096*2)
	}
	v, l = gauge(t, fams, "vllm:lora_requests_info")
	if l["max_lora"] != "5" || l["running_lora_adapters"] != "alpha" || l["waiting_lora_adapters"] != "alpha,beta" {
		t.Errorf("lora labels %v", l)
	}
	if v <= idleStamp || v < float64(before.UnixMicro())/1e6 || v > float64(time.Now().UnixMicro())/1e6 {
		t.Errorf("lora timestamp %f: want a Unix time after the idle one %f, up to now", v, idleStamp)
	}
	// Nothing changed: the same timestamp.
	time.Sleep(2 * time.Millisecond)
	if again, _ := gauge(t, scrape(t, s), "vllm:lora_requests_info"); again != v {
		t.Errorf("timestamp moved without a change: %f then %f", v, again)
	}

	close(f.Block)
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("request %d: %d", i, c)
		}
	}
	fams = scrape(t, s)
	if v, _ := gauge(t, fams, "vllm:num_requests_running"); v != 0 {
		t.Errorf("running after: %g", v)
	}
	if last, l := gauge(t, fams, "vllm:lora_requests_info"); l["running_lora_adapters"] != "" || l["waiting_lora_adapters"] != "" || last <= v {
		t.Errorf("after: %f %v (before %f)", last, l, v)
	}
}

// adapterFolder makes a folder with an empty GGUF file per name.
func adapterFolder(t *testing.T, names ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(root, n+".gguf"), []byte("GGUF"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}
