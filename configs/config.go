// Package configs holds the server's one typed configuration and loads it
// with viper: built-in defaults, then the YAML file, then QWEN3_* environment
// variables, then command-line flags. Unknown keys are refused, and
// Validate runs before anything starts. The documented defaults live in
// qwen3-server.yaml beside this file.
package configs

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/qwen3-lora/qwen3-server/batch"
	"github.com/qwen3-lora/qwen3-server/sampling"
)

// Config is the whole server configuration.
type Config struct {
	Server   ServerConfig   `mapstructure:"server"`
	Log      LogConfig      `mapstructure:"log"`
	Model    ModelConfig    `mapstructure:"model"`
	Engine   EngineConfig   `mapstructure:"engine"`
	Sampling SamplingConfig `mapstructure:"sampling"`
	Adapters AdaptersConfig `mapstructure:"adapters"`
	// Batch is the Files and Batch API (package batch owns its defaults).
	// An empty data_dir turns the API off.
	Batch batch.Config `mapstructure:"batch"`
}

// AdaptersConfig: where LoRA adapters may be loaded from, and which to
// load at start-up.
type AdaptersConfig struct {
	Dirs      []string         `mapstructure:"dirs"`
	CacheDir  string           `mapstructure:"cache_dir"`
	MaxLoaded int              `mapstructure:"max_loaded"`
	Watch     time.Duration    `mapstructure:"watch"`
	Preload   []AdapterPreload `mapstructure:"preload"`
}

// AdapterPreload is one adapter loaded at start-up.
type AdapterPreload struct {
	Name  string  `mapstructure:"name"`
	Path  string  `mapstructure:"path"`
	Scale float32 `mapstructure:"scale"`
}

// SamplingConfig holds the thinking switch default, the thinking budget
// default and the per-mode presets (Qwen3's recommendations by default).
type SamplingConfig struct {
	EnableThinking bool         `mapstructure:"enable_thinking"`
	ThinkingBudget int          `mapstructure:"thinking_budget"`
	Thinking       PresetConfig `mapstructure:"thinking"`
	NonThinking    PresetConfig `mapstructure:"non_thinking"`
}

// PresetConfig is one mode's sampling preset.
type PresetConfig struct {
	Temperature float32 `mapstructure:"temperature"`
	TopP        float32 `mapstructure:"top_p"`
	TopK        int     `mapstructure:"top_k"`
	MinP        float32 `mapstructure:"min_p"`
}

// Params is the preset as sampling parameters (copies: a request cannot
// change the configuration through them).
func (p PresetConfig) Params() sampling.Params {
	t, tp, k, mp := p.Temperature, p.TopP, p.TopK, p.MinP
	return sampling.Params{Temperature: &t, TopP: &tp, TopK: &k, MinP: &mp}
}

// ServerConfig is the HTTP side.
type ServerConfig struct {
	Addr    string   `mapstructure:"addr"`
	APIKeys []string `mapstructure:"api_keys"`
	// AdminKeys may use the operator routes (adapter loading and listing)
	// as well as everything an API key may.
	AdminKeys []string `mapstructure:"admin_keys"`
	// MetricsAddr, when set, serves /metrics on its own listener (and not
	// on Addr): a port for the cluster's scraper that clients never reach.
	MetricsAddr string `mapstructure:"metrics_addr"`
	// MetricsAuth makes /metrics answer only with an admin key.
	MetricsAuth   bool          `mapstructure:"metrics_auth"`
	MaxBodyBytes  int64         `mapstructure:"max_body_bytes"`
	ShutdownGrace time.Duration `mapstructure:"shutdown_grace"`
	CORSOrigins   []string      `mapstructure:"cors_origins"`
	WebUI         bool          `mapstructure:"web_ui"`
}

// LogConfig selects zap's output.
type LogConfig struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// ModelConfig is the GGUF to serve and where it runs.
type ModelConfig struct {
	Path string `mapstructure:"path"`
	ID   string `mapstructure:"id"`
	// GPULayers is "auto" (every layer on the GPU when a GPU backend loaded,
	// else the CPU), "-1" (all, and fail without a GPU), "0" or a count.
	GPULayers        string `mapstructure:"gpu_layers"`
	AllowCPUFallback bool   `mapstructure:"allow_cpu_fallback"`
	MainGPU          int    `mapstructure:"main_gpu"`
	LibDir           string `mapstructure:"lib_dir"`
}

// EngineConfig is the llama.cpp context and scheduler.
type EngineConfig struct {
	CtxSize        int    `mapstructure:"ctx_size"`
	Parallel       int    `mapstructure:"parallel"`
	BatchSize      int    `mapstructure:"batch_size"`
	UBatchSize     int    `mapstructure:"ubatch_size"`
	FlashAttention string `mapstructure:"flash_attention"`
	KVCacheType    string `mapstructure:"kv_cache_type"`
	KVCacheSize    int    `mapstructure:"kv_cache_size"`
	Threads        int    `mapstructure:"threads"`
	QueueSize      int    `mapstructure:"queue_size"`
}

// defaults mirror qwen3-server.yaml (a test checks that they agree).
var defaults = map[string]any{
	"server.addr":              "127.0.0.1:8080",
	"server.api_keys":          []string{},
	"server.admin_keys":        []string{},
	"server.metrics_addr":      "",
	"server.metrics_auth":      false,
	"server.max_body_bytes":    int64(8 << 20),
	"server.shutdown_grace":    30 * time.Second,
	"server.cors_origins":      []string{},
	"server.web_ui":            true,
	"log.level":                "info",
	"log.format":               "console",
	"model.path":               "",
	"model.id":                 "",
	"model.gpu_layers":         "auto",
	"model.allow_cpu_fallback": false,
	"model.main_gpu":           0,
	"model.lib_dir":            "",
	"engine.ctx_size":          8192,
	"engine.parallel":          4,
	"engine.batch_size":        512,
	"engine.ubatch_size":       512,
	"engine.flash_attention":   "auto",
	"engine.kv_cache_type":     "f16",
	"engine.kv_cache_size":     0,
	"engine.threads":           0,
	"engine.queue_size":        64,
	"adapters.dirs":            []string{},
	"adapters.cache_dir":       "",
	"adapters.max_loaded":      8,
	"adapters.watch":           time.Duration(0),
	"adapters.preload":         []any{},
	"sampling.enable_thinking": true,
	"sampling.thinking_budget": -1,
}

// The batch defaults have one source, batch.DefaultConfig; data_dir has
// none there, and here it is "" (the API off): batches write a database and
// files, which a server started for chat must not do unasked.
func init() {
	d := batch.DefaultConfig()
	defaults["batch.data_dir"] = ""
	defaults["batch.max_file_bytes"] = d.MaxFileBytes
	defaults["batch.max_file_lines"] = d.MaxFileLines
	defaults["batch.max_concurrency"] = d.MaxConcurrency
	defaults["batch.poll_interval"] = d.PollInterval
}

// The presets' numbers have one source, sampling's presets; their config
// defaults (sampling.thinking.*, sampling.non_thinking.*) are read from it.
func init() {
	for mode, p := range map[string]sampling.Params{"thinking": sampling.Thinking, "non_thinking": sampling.NonThinking} {
		k := "sampling." + mode + "."
		defaults[k+"temperature"] = *p.Temperature
		defaults[k+"top_p"] = *p.TopP
		defaults[k+"top_k"] = *p.TopK
		defaults[k+"min_p"] = *p.MinP
	}
}

// flagKeys maps command-line flags to config keys.
var flagKeys = map[string]string{
	"model":              "model.path",
	"model-id":           "model.id",
	"addr":               "server.addr",
	"ctx-size":           "engine.ctx_size",
	"parallel":           "engine.parallel",
	"gpu-layers":         "model.gpu_layers",
	"allow-cpu-fallback": "model.allow_cpu_fallback",
	"api-key":            "server.api_keys",
	"log-level":          "log.level",
	"log-format":         "log.format",
	"kv-cache-type":      "engine.kv_cache_type",
	"flash-attention":    "engine.flash_attention",
	"batch-size":         "engine.batch_size",
	"threads":            "engine.threads",
	"enable-thinking":    "sampling.enable_thinking",
	"adapter-dir":        "adapters.dirs",
	"thinking-budget":    "sampling.thinking_budget",
	"web-ui":             "server.web_ui",
	"batch-dir":          "batch.data_dir",
}

// RegisterFlags adds the serve flags to fs.
func RegisterFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "YAML config file (see configs/qwen3-server.yaml)")
	fs.String("model", "", "GGUF model to serve")
	fs.String("model-id", "", "model name reported to clients (default: file name)")
	fs.String("addr", "", "listen address, host:port")
	fs.Int("ctx-size", 0, "context tokens per sequence")
	fs.Int("parallel", 0, "sequences decoded together (slots)")
	fs.String("gpu-layers", "", "layers offloaded to the GPU: auto (all when a GPU backend loaded, else the CPU), -1 = all, 0 = CPU only")
	fs.Bool("allow-cpu-fallback", false, "run on the CPU with a warning when no GPU backend is available")
	fs.StringSlice("api-key", nil, "require this bearer token (repeatable)")
	fs.String("log-level", "", "debug, info, warn or error")
	fs.String("log-format", "", "console or json")
	fs.String("kv-cache-type", "", "f16, q8_0 or q4_0")
	fs.String("flash-attention", "", "auto, on or off")
	fs.Int("batch-size", 0, "most tokens per decode step")
	fs.Int("threads", 0, "CPU threads (0 = automatic: all cores below 8, three quarters of them with a persistent pool from 8)")
	fs.StringSlice("adapter-dir", nil, "folder LoRA adapters may be loaded from (repeatable)")
	fs.Bool("enable-thinking", true, "default thinking mode when a request does not say")
	fs.Bool("web-ui", true, "serve the chat page at /")
	fs.Int("thinking-budget", -1, "default thinking budget in tokens (-1 = none)")
	fs.String("batch-dir", "", "folder for the Files and Batch API's database and files (empty: the API is off)")
}

// Load reads the configuration. fs may be nil; only flags the user set
// override the file and the environment. environ is the process environment
// (passed in so tests need not touch the real one).
func Load(fs *pflag.FlagSet, environ []string) (*Config, error) {
	v := viper.New()
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	path := ""
	if fs != nil {
		path, _ = fs.GetString("config")
	}
	if path == "" {
		path = lookup(environ, "QWEN3_CONFIG")
	}
	if path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config file %s: %w", path, err)
		}
		if err := checkKnownKeys(v.AllKeys()); err != nil {
			return nil, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	// Environment: QWEN3_ENGINE_CTX_SIZE overrides engine.ctx_size, and so on.
	for k := range defaults {
		env := "QWEN3_" + strings.ToUpper(strings.ReplaceAll(k, ".", "_"))
		if val, ok := lookupOK(environ, env); ok {
			if _, isList := defaults[k].([]string); isList {
				v.Set(k, splitList(val))
			} else {
				v.Set(k, val)
			}
		}
	}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "QWEN3_") && name != "QWEN3_CONFIG" && !knownEnv(name) {
			return nil, fmt.Errorf("unknown environment variable %s (known: QWEN3_CONFIG and QWEN3_<SECTION>_<KEY> for every config key)", name)
		}
	}
	if fs != nil {
		fs.Visit(func(f *pflag.Flag) {
			key, ok := flagKeys[f.Name]
			if !ok {
				return
			}
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				v.Set(key, sv.GetSlice())
			} else {
				v.Set(key, f.Value.String())
			}
		})
	}
	var cfg Config
	if err := v.UnmarshalExact(&cfg); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &cfg, nil
}

func knownEnv(name string) bool {
	for k := range defaults {
		if name == "QWEN3_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_")) {
			return true
		}
	}
	return false
}

func checkKnownKeys(keys []string) error {
	var unknown []string
	for _, k := range keys {
		if _, ok := defaults[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("unknown keys: %s", strings.Join(unknown, ", "))
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func lookupOK(environ []string, name string) (string, bool) {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

func lookup(environ []string, name string) string { v, _ := lookupOK(environ, name); return v }

// Validate checks values before the server starts.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Model.Path == "" {
		bad("model.path is required (--model FILE.gguf or QWEN3_MODEL_PATH)")
	} else if st, err := os.Stat(c.Model.Path); err != nil {
		bad("model.path: %v", err)
	} else if st.IsDir() {
		bad("model.path %s is a directory, want a .gguf file", c.Model.Path)
	}
	if c.Server.Addr == "" || !strings.Contains(c.Server.Addr, ":") {
		bad("server.addr %q: want host:port", c.Server.Addr)
	}
	if m := c.Server.MetricsAddr; m != "" && (!strings.Contains(m, ":") || m == c.Server.Addr) {
		bad("server.metrics_addr %q: want host:port, not server.addr (empty: /metrics on server.addr)", m)
	}
	if c.Server.MetricsAuth && len(c.Server.AdminKeys) == 0 {
		bad("server.metrics_auth needs server.admin_keys: /metrics then answers admin keys only")
	}
	for _, k := range c.Server.AdminKeys {
		if slices.Contains(c.Server.APIKeys, k) {
			// An admin key already works as an API key; listing it in both
			// is most likely a copy-paste that hands out admin rights.
			bad("server.admin_keys: a key is also in server.api_keys; admin keys need not be listed there")
			break
		}
	}
	if c.Server.MaxBodyBytes <= 0 {
		bad("server.max_body_bytes must be positive")
	}
	if c.Server.ShutdownGrace < 0 {
		bad("server.shutdown_grace must not be negative")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level %q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "console", "json":
	default:
		bad("log.format %q: want console or json", c.Log.Format)
	}
	if _, _, err := c.Model.GPULayerCount(); err != nil {
		bad("%v", err)
	}
	e := c.Engine
	if e.CtxSize < 16 {
		bad("engine.ctx_size %d: want at least 16", e.CtxSize)
	}
	if e.Parallel < 1 || e.Parallel > 256 {
		bad("engine.parallel %d: want 1..256", e.Parallel)
	}
	if e.BatchSize < 1 {
		bad("engine.batch_size must be positive")
	}
	if e.UBatchSize < 1 || e.UBatchSize > e.BatchSize {
		bad("engine.ubatch_size must be in 1..batch_size")
	}
	if e.BatchSize < e.Parallel {
		bad("engine.batch_size (%d) must be at least engine.parallel (%d): every slot decodes one token per step", e.BatchSize, e.Parallel)
	}
	switch e.FlashAttention {
	case "auto", "on", "off":
	default:
		bad("engine.flash_attention %q: want auto, on or off", e.FlashAttention)
	}
	if e.KVCacheSize < 0 {
		bad("engine.kv_cache_size %d: want 0 (ctx_size cells for each sequence) or a total of KV cells shared by all", e.KVCacheSize)
	}
	switch e.KVCacheType {
	case "f16", "q8_0", "q4_0":
	default:
		bad("engine.kv_cache_type %q: want f16, q8_0 or q4_0", e.KVCacheType)
	}
	if e.KVCacheType != "f16" && e.FlashAttention == "off" {
		bad("engine.kv_cache_type %s needs flash attention (auto or on)", e.KVCacheType)
	}
	if e.Threads < 0 {
		bad("engine.threads must not be negative")
	}
	if e.QueueSize < 0 {
		bad("engine.queue_size must not be negative")
	}
	for i, p := range c.Adapters.Preload {
		if p.Name == "" || p.Path == "" {
			bad("adapters.preload[%d]: name and path are required", i)
		}
		if len(c.Adapters.Dirs) == 0 {
			bad("adapters.preload needs adapters.dirs (--adapter-dir): adapters load only from there")
			break
		}
	}
	if c.Batch.DataDir != "" {
		if err := c.Batch.Validate(); err != nil {
			bad("%v", err)
		}
	}
	if c.Sampling.ThinkingBudget < -1 {
		bad("sampling.thinking_budget must be -1 (none) or a token count")
	}
	for name, p := range map[string]PresetConfig{"thinking": c.Sampling.Thinking, "non_thinking": c.Sampling.NonThinking} {
		if p.Temperature < 0 || p.Temperature > 2 || p.TopP <= 0 || p.TopP > 1 || p.TopK < 0 || p.MinP < 0 || p.MinP > 1 {
			bad("sampling.%s: temperature 0..2, top_p (0, 1], top_k >= 0, min_p 0..1 (got %+v)", name, p)
		}
	}
	return errors.Join(errs...)
}

// GPULayerCount parses model.gpu_layers: auto is true for "auto",
// otherwise n is -1 (all), 0 (CPU) or a count.
func (m ModelConfig) GPULayerCount() (n int, auto bool, err error) {
	s := strings.TrimSpace(m.GPULayers)
	if s == "auto" {
		return 0, true, nil
	}
	n, err = strconv.Atoi(s)
	if err != nil || n < -1 {
		return 0, false, fmt.Errorf("model.gpu_layers %q: want auto, -1 (all), 0 (CPU) or a positive count", m.GPULayers)
	}
	return n, false, nil
}
