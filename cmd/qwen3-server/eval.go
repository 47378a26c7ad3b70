package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/qwen3-lora/qwen3-server/configs"
	"github.com/qwen3-lora/qwen3-server/conversation"
	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/scheduler"
	"github.com/qwen3-lora/qwen3-server/tools/eval"
)

const evalUsage = `qwen3-server eval: base model and adapters on a test set, scored as LLaMA-Factory scores them

Usage:
  qwen3-server eval --model BASE.gguf --data TEST.json --models base,NAME=ADAPTER_DIR_OR_GGUF,... [flags]
  qwen3-server eval --url http://HOST:PORT --data TEST.json --models base,ADAPTER_NAME,... [flags]
  qwen3-server eval score --predictions generated_predictions.jsonl [--predictions ...] [--out DIR]

`

func runEval(args []string) error {
	if len(args) > 0 && args[0] == "score" {
		return runEvalScore(args[1:])
	}
	fs := pflag.NewFlagSet("eval", pflag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, evalUsage); fs.PrintDefaults() }
	configs.RegisterFlags(fs) // the engine's settings, as serve reads them
	for _, serveOnly := range []string{"addr", "api-key", "web-ui", "adapter-dir", "enable-thinking"} {
		fs.MarkHidden(serveOnly) // eval's --models and --thinking decide these
	}
	data := fs.String("data", "", "test set: an alpaca or sharegpt JSON/JSONL file, or a folder (or dataset_info.json) with --dataset")
	dataset := fs.String("dataset", "", "the dataset_info.json entry to read (with --data FOLDER)")
	format := fs.String("format", "auto", "auto, alpaca or sharegpt")
	skipBad := fs.Bool("skip-bad", false, "skip records that cannot be evaluated (each is reported with its line) instead of stopping")
	split := fs.Int("split", 0, "hold out this many items as the test set (the rest is the training part)")
	seed := fs.Uint64("seed", 42, "seed of --split")
	splitOut := fs.String("split-out", "", "with --split: write train.jsonl and test.jsonl into this folder")
	limit := fs.Int("limit", 0, "evaluate at most this many items (0: all)")
	models := fs.String("models", "base", "comma-separated models: base, NAME=PATH (a PEFT folder or GGUF LoRA), or with --url the server's adapter names")
	url := fs.String("url", "", "evaluate through a running server's OpenAI API instead of loading the model here")
	urlKey := fs.String("url-key", "", "bearer token for --url")
	thinking := fs.String("thinking", "auto", "auto (on for items whose label has reasoning), on or off")
	samplingMode := fs.String("sampling", "greedy", "greedy (temperature 0, as LLaMA-Factory's predict usually runs) or preset (each mode's preset and the adapters' manifests)")
	temperature := fs.Float32("temperature", 0, "explicit temperature (wins over --sampling)")
	topP := fs.Float32("top-p", 0, "explicit top_p")
	topK := fs.Int("top-k", 0, "explicit top_k")
	maxTokens := fs.Int("max-tokens", 1024, "most tokens per answer, reasoning included (LLaMA-Factory's max_new_tokens default)")
	score := fs.String("score", "answer", "answer: score the answers; full: reasoning and answer, as LLaMA-Factory's predict with think-block labels")
	out := fs.String("out", "eval-out", "output folder: one folder per model with LLaMA-Factory's files, report.html")
	resume := fs.Bool("resume", false, "continue an interrupted run in --out")
	title := fs.String("title", "", "report title")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	thinkMode, err := eval.ParseThinking(*thinking)
	if err != nil {
		return err
	}
	scoreMode, err := eval.ParseScoreMode(*score)
	if err != nil {
		return err
	}
	specs, err := parseModels(*models, *url != "")
	if err != nil {
		return err
	}
	items, label, err := loadEvalItems(*data, *dataset, eval.Format(*format), *skipBad, *split, *seed, *splitOut, *limit)
	if err != nil {
		return err
	}
	req := eval.Request{MaxTokens: *maxTokens}
	switch *samplingMode {
	case "greedy":
		req.Sampling = eval.Greedy()
	case "preset":
	default:
		return fmt.Errorf("--sampling %q: want greedy or preset", *samplingMode)
	}
	if fs.Changed("temperature") {
		req.Sampling.Temperature = temperature
	}
	if fs.Changed("top-p") {
		req.Sampling.TopP = topP
	}
	if fs.Changed("top-k") {
		req.Sampling.TopK = topK
	}
	if err := req.Sampling.Validate(); err != nil {
		return err
	}
	cfg, err := configs.Load(fs, os.Environ())
	if err != nil {
		return err
	}
	if !fs.Changed("log-level") && os.Getenv("QWEN3_LOG_LEVEL") == "" {
		cfg.Log.Level = "warn" // the progress line is the report; the engine's info lines would break it
	}
	// In this process the planner has the configured budget as its
	// default; a server gets it with each request.
	if b := cfg.Sampling.ThinkingBudget; *url != "" && b >= 0 {
		req.ThinkingBudget = &b
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	opts := eval.Options{Models: names, OutDir: *out, Parallel: cfg.Engine.Parallel, Thinking: thinkMode, Score: scoreMode, Resume: *resume, Progress: os.Stderr}
	var gen eval.Generator
	if *url != "" {
		gen = &eval.HTTPGenerator{URL: *url, APIKey: *urlKey, Request: req}
	} else {
		g, closeEngine, err := engineGenerator(cfg, specs, req)
		if err != nil {
			return err
		}
		defer closeEngine()
		gen = g
		opts.Parallel = 0 // the engine's slots and queue decide
	}
	fmt.Fprintf(os.Stderr, "eval: %d items × %d models from %s, thinking %s, scoring the %s\n", len(items), len(specs), label, thinkMode, scoreMode)
	results, err := eval.Run(ctx, gen, items, opts)
	if err != nil {
		return err
	}
	return finishEval(*out, *title, label, scoreMode, results)
}

// finishEval writes the report and prints the table.
func finishEval(out, title, dataset string, mode eval.ScoreMode, results []*eval.ModelResult) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if title == "" {
		title = "Evaluation of " + strings.Join(modelNames(results), ", ")
	}
	f, err := os.Create(filepath.Join(out, "report.html"))
	if err != nil {
		return err
	}
	if err := eval.Report(f, eval.ReportInfo{Title: title, Dataset: dataset, Score: mode, When: time.Now()}, results); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := eval.Table(os.Stdout, results); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "predictions and predict_results.json per model in %s; report: %s\n", out, filepath.Join(out, "report.html"))
	return nil
}

func modelNames(results []*eval.ModelResult) []string {
	var n []string
	for _, r := range results {
		n = append(n, r.Name)
	}
	return n
}

// modelSpec is one --models entry.
type modelSpec struct{ Name, Path string }

func parseModels(s string, remote bool) ([]modelSpec, error) {
	var out []modelSpec
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, path, hasPath := strings.Cut(part, "=")
		switch {
		case remote && hasPath:
			return nil, fmt.Errorf("--models %s: with --url, name the server's adapters (load them there first)", part)
		case !remote && !hasPath && name != "base":
			return nil, fmt.Errorf("--models %s: give the adapter's path as NAME=PATH (a PEFT folder or a GGUF LoRA)", part)
		case hasPath && name == "base":
			return nil, fmt.Errorf("--models: \"base\" is the model itself; name the adapter otherwise")
		case seen[name]:
			return nil, fmt.Errorf("--models: %q twice", name)
		}
		seen[name] = true
		out = append(out, modelSpec{name, path})
	}
	if len(out) == 0 {
		return nil, errors.New("--models is empty")
	}
	return out, nil
}

// loadEvalItems reads the test set, splits and limits it; label names it
// for the report.
func loadEvalItems(data, dataset string, format eval.Format, skipBad bool, split int, seed uint64, splitOut string, limit int) ([]*eval.Item, string, error) {
	if data == "" {
		return nil, "", errors.New("--data is required")
	}
	src := eval.Source{Path: data, Format: format, SkipBad: skipBad}
	label := data
	if st, err := os.Stat(data); dataset != "" || (err == nil && st.IsDir()) {
		if dataset == "" {
			return nil, "", fmt.Errorf("--data %s is a folder: name the dataset_info.json entry with --dataset", data)
		}
		if src, err = eval.DatasetInfo(data, dataset); err != nil {
			return nil, "", err
		}
		if format != eval.FormatAuto {
			src.Format = format
		}
		src.SkipBad = skipBad
		label = dataset + " (" + src.Path + ")"
	}
	d, err := eval.Load(src)
	if err != nil {
		return nil, "", err
	}
	for _, e := range d.Skipped {
		fmt.Fprintln(os.Stderr, "skipped:", e)
	}
	items := d.Items
	if split > 0 {
		train, test, err := eval.Split(items, split, seed)
		if err != nil {
			return nil, "", err
		}
		if splitOut != "" {
			if err := os.MkdirAll(splitOut, 0o755); err != nil {
				return nil, "", err
			}
			if err := eval.WriteJSONL(filepath.Join(splitOut, "train.jsonl"), train); err != nil {
				return nil, "", err
			}
			if err := eval.WriteJSONL(filepath.Join(splitOut, "test.jsonl"), test); err != nil {
				return nil, "", err
			}
		}
		items = test
		label += fmt.Sprintf(", %d held out with seed %d", split, seed)
	}
	if limit > 0 && limit < len(items) {
		items = items[:limit]
	}
	if len(items) == 0 {
		return nil, "", errors.New("no items to evaluate")
	}
	return items, label, nil
}

// engineGenerator starts the engine as serve does and loads the adapters
// through the same registry code.
func engineGenerator(cfg *configs.Config, specs []modelSpec, req eval.Request) (*eval.EngineGenerator, func(), error) {
	log, err := validatedLogger(cfg)
	if err != nil {
		return nil, nil, err
	}
	eng, err := scheduler.New(engineOptions(cfg), log.Named("engine"))
	if err != nil {
		return nil, nil, err
	}
	gen := &eval.EngineGenerator{Engine: eng, Request: req, Models: map[string]eval.EngineModel{},
		Planner: conversation.NewPlanner(conversation.Defaults{EnableThinking: cfg.Sampling.EnableThinking, ThinkingBudget: cfg.Sampling.ThinkingBudget,
			Thinking: cfg.Sampling.Thinking.Params(), NonThinking: cfg.Sampling.NonThinking.Params()})}
	ac := configs.AdaptersConfig{CacheDir: cfg.Adapters.CacheDir, MaxLoaded: len(specs)}
	for _, s := range specs {
		if s.Path == "" {
			gen.Models[s.Name] = eval.EngineModel{}
			continue
		}
		abs, err := filepath.Abs(s.Path)
		if err != nil {
			eng.Close()
			return nil, nil, err
		}
		ac.Dirs = append(ac.Dirs, filepath.Dir(abs))
		ac.Preload = append(ac.Preload, configs.AdapterPreload{Name: s.Name, Path: abs})
	}
	if len(ac.Preload) > 0 {
		reg, err := newRegistry(eng, ac, log.Named("adapters"))
		if err != nil {
			eng.Close()
			return nil, nil, err
		}
		for _, p := range ac.Preload {
			use, m, _, err := reg.Acquire(p.Name, -1) // held for the whole run
			if err != nil {
				eng.Close()
				return nil, nil, err
			}
			gen.Models[p.Name] = eval.EngineModel{Adapters: []engine.AdapterUse{use}, Manifest: m}
		}
	}
	return gen, func() { eng.Close(); log.Sync() }, nil
}

// runEvalScore scores existing generated_predictions.jsonl files (ours or
// LLaMA-Factory's).
func runEvalScore(args []string) error {
	fs := pflag.NewFlagSet("eval score", pflag.ContinueOnError)
	preds := fs.StringArray("predictions", nil, "a generated_predictions.jsonl (repeatable: one per model; the model is named after its folder, or NAME=FILE)")
	score := fs.String("score", "answer", "answer: strip think blocks from predict and label first; full: score the texts as they are (LLaMA-Factory's own scores)")
	out := fs.String("out", "", "write NAME/predict_results.json per file and report.html into this folder")
	title := fs.String("title", "", "report title")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	if len(*preds) == 0 {
		return errors.New("--predictions is required")
	}
	mode, err := eval.ParseScoreMode(*score)
	if err != nil {
		return err
	}
	var results []*eval.ModelResult
	for _, p := range *preds {
		name, path, ok := strings.Cut(p, "=")
		if !ok {
			path = p
			abs, _ := filepath.Abs(p)
			name = filepath.Base(filepath.Dir(abs))
		}
		list, err := eval.ReadPredictions(path, false)
		if err != nil {
			return err
		}
		r, err := eval.Score(name, list, mode)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if *out == "" {
		return eval.Table(os.Stdout, results)
	}
	for _, r := range results {
		dir := filepath.Join(*out, r.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := eval.WriteResults(filepath.Join(dir, eval.ResultsFile), r); err != nil {
			return err
		}
	}
	return finishEval(*out, *title, strings.Join(*preds, ", "), mode, results)
}
