package configs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/qwen3-lora/qwen3-server/batch"
)

func TestShippedFileMatchesDefaults(t *testing.T) {
	fromFile, err := Load(flags(t, "--config", "qwen3-server.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	builtIn, err := Load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := strings.TrimSpace(dump(fromFile)), strings.TrimSpace(dump(builtIn)); a != b {
		t.Fatalf("qwen3-server.yaml and built-in defaults differ:\n%s\n---\n%s", a, b)
	}
}

func dump(c *Config) string {
	var b strings.Builder
	for _, s := range []any{c.Server, c.Log, c.Model, c.Engine, c.Sampling} {
		b.WriteString(strings.ReplaceAll(strings.TrimSpace(sprint(s)), "[]", "<nil>"))
	}
	return b.String()
}

func flags(t *testing.T, args ...string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	os.WriteFile(file, []byte("engine:\n  ctx_size: 1000\n  parallel: 2\nserver:\n  addr: 0.0.0.0:1\n"), 0o644)
	env := []string{"QWEN3_ENGINE_PARALLEL=3", "QWEN3_SERVER_ADDR=127.0.0.1:2", "QWEN3_SERVER_API_KEYS=a, b"}
	cfg, err := Load(flags(t, "--config", file, "--addr", "127.0.0.1:3"), env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Engine.CtxSize != 1000 {
		t.Errorf("file value lost: ctx_size %d", cfg.Engine.CtxSize)
	}
	if cfg.Engine.Parallel != 3 {
		t.Errorf("env should override file: parallel %d", cfg.Engine.Parallel)
	}
	if cfg.Server.Addr != "127.0.0.1:3" {
		t.Errorf("flag should override env: addr %s", cfg.Server.Addr)
	}
	if len(cfg.Server.APIKeys) != 2 || cfg.Server.APIKeys[1] != "b" {
		t.Errorf("api keys from env: %q", cfg.Server.APIKeys)
	}
	if cfg.Engine.BatchSize != 512 || cfg.Server.ShutdownGrace != 30*time.Second {
		t.Errorf("defaults lost: %+v", cfg)
	}
}

// Admin keys and the metrics listener come from the file or the
// environment like every key (the Helm chart sets QWEN3_SERVER_ADMIN_KEYS
// from a Secret and server.metrics_addr in its ConfigMap).
func TestAdminKeysAndMetricsAddr(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(file, []byte("server:\n  metrics_addr: 0.0.0.0:9090\n  metrics_auth: true\n"), 0o644)
	cfg, err := Load(flags(t, "--config", file), []string{"QWEN3_SERVER_ADMIN_KEYS=root1, root2", "QWEN3_SERVER_API_KEYS=user"})
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Server
	if s.MetricsAddr != "0.0.0.0:9090" || !s.MetricsAuth || len(s.AdminKeys) != 2 || s.AdminKeys[0] != "root1" || s.AdminKeys[1] != "root2" || len(s.APIKeys) != 1 {
		t.Fatalf("%+v", s)
	}
	if cfg, err = Load(nil, nil); err != nil || cfg.Server.MetricsAddr != "" || cfg.Server.MetricsAuth || len(cfg.Server.AdminKeys) != 0 {
		t.Fatalf("defaults: %+v %v", cfg.Server, err)
	}
}

func TestUnknownKeysRefused(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	os.WriteFile(file, []byte("engine:\n  ctx_sise: 1000\n"), 0o644)
	if _, err := Load(flags(t, "--config", file), nil); err == nil || !strings.Contains(err.Error(), "engine.ctx_sise") {
		t.Fatalf("want unknown key error naming engine.ctx_sise, got %v", err)
	}
	if _, err := Load(nil, []string{"QWEN3_ENGINE_CTXSIZE=5"}); err == nil || !strings.Contains(err.Error(), "QWEN3_ENGINE_CTXSIZE") {
		t.Fatalf("want unknown env error, got %v", err)
	}
}

func TestValidate(t *testing.T) {
	model := filepath.Join(t.TempDir(), "m.gguf")
	os.WriteFile(model, []byte("GGUF"), 0o644)
	base := func() *Config {
		c, err := Load(nil, []string{"QWEN3_MODEL_PATH=" + model})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("defaults with a model should validate: %v", err)
	}
	cases := map[string]func(*Config){
		"model.path is required": func(c *Config) { c.Model.Path = "" },
		"no such file":           func(c *Config) { c.Model.Path = model + ".missing" },
		"engine.parallel":        func(c *Config) { c.Engine.Parallel = 0 },
		"engine.kv_cache_type":   func(c *Config) { c.Engine.KVCacheType = "q5" },
		"needs flash attention":  func(c *Config) { c.Engine.KVCacheType = "q8_0"; c.Engine.FlashAttention = "off" },
		"log.level":              func(c *Config) { c.Log.Level = "loud" },
		"server.addr":            func(c *Config) { c.Server.Addr = "8080" },
		"ubatch_size":            func(c *Config) { c.Engine.UBatchSize = 4096 },
		"model.gpu_layers":       func(c *Config) { c.Model.GPULayers = "most" },
		"positive count":         func(c *Config) { c.Model.GPULayers = "-3" },
		"batch.max_concurrency":  func(c *Config) { c.Batch.DataDir = "/tmp/b"; c.Batch.MaxConcurrency = 0 },
		"batch.max_file_bytes":   func(c *Config) { c.Batch.DataDir = "/tmp/b"; c.Batch.MaxFileBytes = -1 },
		"server.metrics_addr":    func(c *Config) { c.Server.MetricsAddr = c.Server.Addr },
		"metrics_auth needs":     func(c *Config) { c.Server.MetricsAuth = true },
		"need not be listed":     func(c *Config) { c.Server.APIKeys, c.Server.AdminKeys = []string{"a", "b"}, []string{"b"} },
	}
	for want, mutate := range cases {
		c := base()
		mutate(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want error containing %q, got %v", want, err)
		}
	}
}

func sprint(v any) string { return strings.TrimSpace(strings.ReplaceAll(fmtV(v), "\n", " ")) }

func fmtV(v any) string { return fmt.Sprintf("%+v", v) }

// gpu_layers is "auto" unless set; a number from any source is a count.
func TestGPULayers(t *testing.T) {
	for _, tc := range []struct {
		env      []string
		flag     string
		wantN    int
		wantAuto bool
	}{
		{nil, "", 0, true},
		{[]string{"QWEN3_MODEL_GPU_LAYERS=0"}, "", 0, false},
		{[]string{"QWEN3_MODEL_GPU_LAYERS=auto"}, "-1", -1, false},
		{nil, "12", 12, false},
	} {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		RegisterFlags(fs)
		if tc.flag != "" {
			if err := fs.Parse([]string{"--gpu-layers", tc.flag}); err != nil {
				t.Fatal(err)
			}
		}
		c, err := Load(fs, tc.env)
		if err != nil {
			t.Fatal(err)
		}
		n, auto, err := c.Model.GPULayerCount()
		if err != nil || n != tc.wantN || auto != tc.wantAuto {
			t.Errorf("env %v flag %q: got %d auto=%v err=%v, want %d auto=%v", tc.env, tc.flag, n, auto, err, tc.wantN, tc.wantAuto)
		}
	}
}

// The batch section: off without data_dir (its other values unchecked
// then), set from the environment and the flag, defaults from batch.
func TestBatchConfig(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	RegisterFlags(fs)
	if err := fs.Parse([]string{"--batch-dir", "/srv/batches"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(fs, []string{"QWEN3_BATCH_MAX_CONCURRENCY=2", "QWEN3_BATCH_POLL_INTERVAL=250ms"})
	if err != nil {
		t.Fatal(err)
	}
	d := batch.DefaultConfig()
	want := batch.Config{DataDir: "/srv/batches", MaxFileBytes: d.MaxFileBytes, MaxFileLines: d.MaxFileLines, MaxConcurrency: 2, PollInterval: 250 * time.Millisecond}
	if c.Batch != want {
		t.Fatalf("batch config %+v, want %+v", c.Batch, want)
	}
	off, err := Load(nil, nil)
	if err != nil || off.Batch.DataDir != "" {
		t.Fatalf("data_dir default: %q %v", off.Batch.DataDir, err)
	}
}
