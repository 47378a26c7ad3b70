package server

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/qwen3-lora/qwen3-server/adapters"
	"github.com/qwen3-lora/qwen3-server/engine"
)

// metrics is a small Prometheus registry: the text exposition format is
// simple enough that a client library would add more than it saves.
type metrics struct {
	mu        sync.Mutex
	requests  map[[2]string]uint64 // {route, status} → count
	tokensIn  uint64
	tokensOut uint64
	ttft      *histogram
	itl       *histogram
	// vllm:lora_requests_info's labels at the last scrape and when they
	// last changed (its value).
	loraLabels  string
	loraUpdated time.Time
}

type histogram struct {
	bounds []float64
	counts []uint64 // per bucket, cumulative at exposition
	sum    float64
	count  uint64
}

func newHistogram(bounds ...float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]uint64, len(bounds))}
}

func (h *histogram) observe(v float64) {
	for i, b := range h.bounds {
		if v <= b {
			h.counts[i]++
			break
		}
	}
	h.sum += v
	h.count++
}

func newMetrics() *metrics {
	return &metrics{
		requests: map[[2]string]uint64{},
		ttft:     newHistogram(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
		itl:      newHistogram(0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 1),
	}
}

func (m *metrics) request(route string, status int) {
	m.mu.Lock()
	m.requests[[2]string{route, fmt.Sprint(status)}]++
	m.mu.Unlock()
}

func (m *metrics) tokens(in, out int) {
	m.mu.Lock()
	m.tokensIn += uint64(in)
	m.tokensOut += uint64(out)
	m.mu.Unlock()
}

// tokenTimer records time to first token and inter-token latency of one
// request as its tokens arrive.
type tokenTimer struct {
	m     *metrics
	start time.Time
	last  time.Time
}

func (m *metrics) timer() *tokenTimer { return &tokenTimer{m: m, start: time.Now()} }

func (t *tokenTimer) token() {
	now := time.Now()
	t.m.mu.Lock()
	if t.last.IsZero() {
		t.m.ttft.observe(now.Sub(t.start).Seconds())
	} else {
		t.m.itl.observe(now.Sub(t.last).Seconds())
	}
	t.m.mu.Unlock()
	t.last = now
}

func (s *Server) metricsHandler(c *gin.Context) {
	c.Header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.metrics.write(c.Writer, s)
}

func (m *metrics) write(w io.Writer, s *Server) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintln(w, "# HELP qwen3_requests_total HTTP requests by route and status.")
	fmt.Fprintln(w, "# TYPE qwen3_requests_total counter")
	keys := make([][2]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	for _, k := range keys {
		fmt.Fprintf(w, "qwen3_requests_total{route=%q,status=%q} %d\n", k[0], k[1], m.requests[k])
	}
	fmt.Fprintln(w, "# HELP qwen3_prompt_tokens_total Prompt tokens processed.")
	fmt.Fprintln(w, "# TYPE qwen3_prompt_tokens_total counter")
	fmt.Fprintf(w, "qwen3_prompt_tokens_total %d\n", m.tokensIn)
	fmt.Fprintln(w, "# HELP qwen3_completion_tokens_total Tokens generated.")
	fmt.Fprintln(w, "# TYPE qwen3_completion_tokens_total counter")
	fmt.Fprintf(w, "qwen3_completion_tokens_total %d\n", m.tokensOut)
	writeHistogram(w, "qwen3_time_to_first_token_seconds", "Time from request to first generated token.", m.ttft)
	writeHistogram(w, "qwen3_inter_token_latency_seconds", "Time between consecutive generated tokens of a request.", m.itl)
	var st engine.Stats
	if e := s.engine(); e != nil {
		st = e.Stats()
	}
	fmt.Fprintln(w, "# HELP qwen3_queue_depth Requests waiting for a slot.")
	fmt.Fprintln(w, "# TYPE qwen3_queue_depth gauge")
	fmt.Fprintf(w, "qwen3_queue_depth %d\n", st.QueueDepth)
	fmt.Fprintln(w, "# HELP qwen3_slots_busy Slots generating.")
	fmt.Fprintln(w, "# TYPE qwen3_slots_busy gauge")
	fmt.Fprintf(w, "qwen3_slots_busy %d\n", st.BusySlots)
	fmt.Fprintln(w, "# HELP qwen3_slots Slots (parallel sequences).")
	fmt.Fprintln(w, "# TYPE qwen3_slots gauge")
	fmt.Fprintf(w, "qwen3_slots %d\n", st.Slots)
	m.writeGIE(w, st, s.adapterRegistry())
}

// writeGIE writes the metrics of the Gateway API Inference Extension's
// model-server protocol (docs/proposals/003-model-server-protocol) under
// vLLM's names, which its endpoint picker reads without configuration.
// Called with m.mu held.
func (m *metrics) writeGIE(w io.Writer, st engine.Stats, reg *adapters.Registry) {
	gauge := func(name, help string) { fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name) }
	gauge("vllm:num_requests_waiting", "Requests queued for a slot.")
	fmt.Fprintf(w, "vllm:num_requests_waiting %d\n", st.QueueDepth)
	gauge("vllm:num_requests_running", "Requests in a slot (prefill or generation).")
	fmt.Fprintf(w, "vllm:num_requests_running %d\n", st.BusySlots)
	usage := 0.0
	if st.KVCells > 0 {
		usage = float64(st.KVCellsUsed) / float64(st.KVCells)
	}
	gauge("vllm:kv_cache_usage_perc", "KV cache use, 0 to 1: cells held by running requests over all cells.")
	fmt.Fprintf(w, "vllm:kv_cache_usage_perc %s\n", strconv.FormatFloat(usage, 'g', -1, 64))
	// llama.cpp allocates its KV cache per token (a cell), not in pages:
	// a block is one cell, and the blocks are all the cells, whether the
	// cache lives on the GPU or (CPU backend) in host memory.
	gauge("vllm:cache_config_info", "KV cache configuration: block_size tokens per block (1: llama.cpp allocates per token), num_gpu_blocks the blocks in all.")
	fmt.Fprintf(w, "vllm:cache_config_info{block_size=\"1\",num_gpu_blocks=\"%d\"} 1\n", st.KVCells)
	if reg == nil || reg.Loads() == 0 {
		return // the protocol's LoRA metric appears once an adapter was loaded
	}
	maxLoRA := reg.MaxLoaded
	if maxLoRA <= 0 {
		// No cap on loaded adapters: at most one per slot can have
		// requests running (stacked adapters aside).
		maxLoRA = st.Slots
	}
	labels := fmt.Sprintf("max_lora=%q,running_lora_adapters=%q,waiting_lora_adapters=%q",
		strconv.Itoa(maxLoRA), strings.Join(reg.Names(st.RunningAdapters), ","), strings.Join(reg.Names(st.WaitingAdapters), ","))
	if labels != m.loraLabels {
		m.loraLabels, m.loraUpdated = labels, time.Now()
	}
	gauge("vllm:lora_requests_info", "Adapters with requests running and waiting; the value is the Unix time a scrape first saw these labels.")
	fmt.Fprintf(w, "vllm:lora_requests_info{%s} %s\n", labels, strconv.FormatFloat(float64(m.loraUpdated.UnixMicro())/1e6, 'f', -1, 64))
}

func writeHistogram(w io.Writer, name, help string, h *histogram) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		fmt.Fprintf(w, "%s_bucket{le=%q} %d\n", name, trimFloat(b), cum)
	}
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %s\n%s_count %d\n", name, h.count, name, trimFloat(h.sum), name, h.count)
}

func trimFloat(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.6f", f), "0"), ".")
}
