package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/qwen3-lora/qwen3-server/adapters"
	"github.com/qwen3-lora/qwen3-server/batch"
	"github.com/qwen3-lora/qwen3-server/configs"
	"github.com/qwen3-lora/qwen3-server/conversation/qwen3"
	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
	"github.com/qwen3-lora/qwen3-server/engine/scheduler"
	"github.com/qwen3-lora/qwen3-server/server"
)

func runServe(args []string) error {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	configs.RegisterFlags(fs)
	demo := fs.String("demo-model", "", "model to serve when none is configured (make run passes the random tiny model)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := configs.Load(fs, os.Environ())
	if err != nil {
		return err
	}
	demoMode := false
	if cfg.Model.Path == "" && *demo != "" {
		cfg.Model.Path, demoMode = *demo, true
	}
	log, err := validatedLogger(cfg)
	if err != nil {
		return err
	}
	defer log.Sync()
	if demoMode {
		log.Warn("no model configured: serving the generated DEMO model; its weights are random, so its text is noise. Pass --model FILE.gguf for a real Qwen3.", zap.String("model", cfg.Model.Path))
	}

	srv := server.New(cfg.Server, cfg.Sampling, log.Named("server"))
	var store *batch.Store
	if cfg.Batch.DataDir != "" {
		// Opened before listening, so that a folder in use by another
		// server fails the start; lines run once the engine is ready.
		if store, err = batch.Open(cfg.Batch, log); err != nil {
			return err
		}
		defer store.Close()
		srv.SetBatches(store)
	}
	if err := srv.Start(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The model loads while /health answers 503.
	type loaded struct {
		eng *scheduler.Engine
		err error
	}
	ready := make(chan loaded, 1)
	go func() {
		e, err := scheduler.New(engineOptions(cfg), log.Named("engine"))
		ready <- loaded{e, err}
	}()
	var eng *scheduler.Engine
	select {
	case l := <-ready:
		if l.err != nil {
			shutdown(srv, store, cfg, log)
			return l.err
		}
		eng = l.eng
		if !qwen3.OfficialTemplate(eng.Info().ChatTemplate) {
			// A fine-tune changed the template: prompts still follow the
			// official Qwen3 format (which LLaMA-Factory's qwen3 template
			// produces), because the reasoning parser, the thinking switch
			// and tool calls depend on it. See README, "Chat template".
			log.Warn("the model's chat template is not the official Qwen3 template; prompts are rendered with the built-in Qwen3 template")
		}
		reg, err := loadAdapters(ctx, eng, cfg, log)
		if err != nil {
			shutdown(srv, store, cfg, log)
			return err
		}
		if reg != nil {
			srv.SetAdapters(reg)
		}
		srv.SetEngine(eng)
		if store != nil {
			if err := store.Start(srv.Executor(), srv.ModelCheck()); err != nil {
				shutdown(srv, store, cfg, log)
				eng.Close()
				return err
			}
		}
		log.Info("ready", zap.String("url", "http://"+srv.Addr()))
	case <-ctx.Done():
		shutdown(srv, store, cfg, log)
		return nil
	}
	<-ctx.Done()
	log.Info("shutting down: draining", zap.Duration("grace", cfg.Server.ShutdownGrace))
	shutdown(srv, store, cfg, log)
	return eng.Close()
}

// loadAdapters sets up the adapter registry when adapters.dirs is set
// (nil otherwise) and, with adapters.watch, watches the folders until ctx
// ends (serve's and run-batch's).
func loadAdapters(ctx context.Context, eng *scheduler.Engine, cfg *configs.Config, log *zap.Logger) (*adapters.Registry, error) {
	if len(cfg.Adapters.Dirs) == 0 {
		return nil, nil
	}
	reg, err := newRegistry(eng, cfg.Adapters, log.Named("adapters"))
	if err != nil {
		return nil, err
	}
	if cfg.Adapters.Watch > 0 {
		go reg.Watch(ctx, cfg.Adapters.Watch)
	}
	return reg, nil
}

// newRegistry is the adapter registry of the configuration with its
// preloaded adapters (serve's, and eval's models).
func newRegistry(loader *scheduler.Engine, c configs.AdaptersConfig, log *zap.Logger) (*adapters.Registry, error) {
	reg, err := adapters.NewRegistry(loader, c.Dirs, c.CacheDir, log)
	if err != nil {
		return nil, err
	}
	reg.MaxLoaded = c.MaxLoaded
	for _, p := range c.Preload {
		scale := p.Scale
		if scale == 0 {
			scale = 1
		}
		if _, err := reg.Load(p.Name, p.Path, scale); err != nil {
			return nil, fmt.Errorf("adapters.preload %s: %w", p.Name, err)
		}
	}
	return reg, nil
}

// shutdown drains the server: readiness fails and new requests get 503
// at once, running ones get server.shutdown_grace to finish; then the
// listeners close. Requests still running after the grace are cut when
// the engine closes. The batch runner (store may be nil) stops in the same
// grace period, beside the drain: batch lines cut by it stay pending and
// run again after the next start.
func shutdown(srv *server.Server, store *batch.Store, cfg *configs.Config, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownGrace)
	defer cancel()
	batchDone := make(chan struct{})
	go func() {
		defer close(batchDone)
		if store == nil {
			return
		}
		if err := store.Stop(ctx); err != nil {
			log.Warn("batch lines still running at the end of the grace period were cut; they run again after a restart", zap.Error(err))
		}
	}()
	if err := srv.Drain(ctx); err != nil {
		log.Warn("the grace period is over: cutting the requests still running", zap.Error(err))
	}
	// Nothing runs any more (or it is being cut): close the listeners and
	// the idle connections without waiting again.
	stopCtx, cancelStop := context.WithTimeout(context.Background(), time.Second)
	defer cancelStop()
	if err := srv.Stop(stopCtx); err != nil {
		log.Warn("connections closed while still busy", zap.Error(err))
	}
	<-batchDone
}

func engineOptions(cfg *configs.Config) scheduler.Options {
	// Validate has checked the value.
	gpuLayers, auto, _ := cfg.Model.GPULayerCount()
	if auto {
		gpuLayers = scheduler.GPULayersAuto
	}
	return scheduler.Options{
		ModelPath: cfg.Model.Path, ModelID: cfg.Model.ID, GPULayers: gpuLayers,
		AllowCPUFallback: cfg.Model.AllowCPUFallback, MainGPU: cfg.Model.MainGPU, LibDir: libDir(cfg.Model.LibDir),
		ContextSize: cfg.Engine.CtxSize, Parallel: cfg.Engine.Parallel, BatchSize: cfg.Engine.BatchSize,
		UBatchSize: cfg.Engine.UBatchSize, FlashAttention: cfg.Engine.FlashAttention, KVCacheType: cfg.Engine.KVCacheType,
		Threads: cfg.Engine.Threads, QueueSize: cfg.Engine.QueueSize, KVCacheSize: cfg.Engine.KVCacheSize,
		LowMax: cfg.Batch.MaxConcurrency,
	}
}

// libDir is where the GPU backend lives: configured, or <exe>/../lib/ollama,
// the folder ggml itself searches and `make cuda` fills.
func libDir(configured string) string {
	if configured != "" {
		return configured
	}
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	return filepath.Join(filepath.Dir(exe), "..", "lib", "ollama")
}

// validatedLogger validates cfg and builds the logger it configures, with
// llama.cpp's log routed to it: the start of every command that loads a
// model with the server's configuration.
func validatedLogger(cfg *configs.Config) (*zap.Logger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	log, err := newLogger(cfg.Log)
	if err != nil {
		return nil, err
	}
	routeLlamaLog(log.Named("llama.cpp"))
	return log, nil
}

func newLogger(c configs.LogConfig) (*zap.Logger, error) {
	var zc zap.Config
	if c.Format == "json" {
		zc = zap.NewProductionConfig()
	} else {
		zc = zap.NewDevelopmentConfig()
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
		zc.DisableStacktrace = true
	}
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, err
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	return zc.Build()
}

// routeLlamaLog sends llama.cpp's and ggml's output to zap: warnings and
// errors at their level, the chatty rest at debug — except the lines that
// say which backend and device were loaded, which an operator needs to see.
func routeLlamaLog(log *zap.Logger) {
	llamacpp.SetLogger(func(level int, text string) {
		msg := trimNL(text)
		if msg == "" || msg == "." {
			return
		}
		switch level {
		case 3:
			log.Warn(msg)
		case 4:
			log.Error(msg)
		default:
			if containsAny(msg, "load_backend", "offloaded", "using device") {
				log.Info(msg)
			} else {
				log.Debug(msg)
			}
		}
	})
}
