package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/qwen3-lora/qwen3-server/tools/modelgen"
)

func runModel(args []string) error {
	if len(args) == 0 || (args[0] != "random" && args[0] != "chain") {
		return errors.New("usage: qwen3-server model random|chain --tokenizer DIR --out FILE [--shape tiny|small|qwen3-4b]")
	}
	kind := args[0]
	fs := pflag.NewFlagSet("model "+kind, pflag.ContinueOnError)
	shapeName := fs.String("shape", "tiny", "tiny (< 50 MB, tests and demo), small (~100M parameters, 206 MB: CPU speed work) or qwen3-4b (exact Qwen3-4B shape, F16, ~8 GB)")
	tokDir := fs.String("tokenizer", "testdata/cache/tokenizer", "folder with tokenizer.json and tokenizer_config.json")
	out := fs.String("out", "", "output GGUF file")
	seed := fs.Uint64("seed", 1, "random seed")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out is required")
	}
	shape, ok := modelgen.Shapes[*shapeName]
	if !ok {
		return fmt.Errorf("unknown shape %q (tiny, small, qwen3-4b)", *shapeName)
	}
	vocab, err := modelgen.LoadVocab(*tokDir, shape.Vocab)
	if err != nil {
		return err
	}
	opts := modelgen.Options{Shape: shape, Vocab: vocab, Seed: *seed}
	if kind == "chain" {
		if opts.Chain, err = vocab.Chain(); err != nil {
			return err
		}
	}
	start := time.Now()
	last := time.Now()
	err = modelgen.Write(*out, opts, func(done, total uint64) {
		if time.Since(last) > 500*time.Millisecond || done == total {
			last = time.Now()
			fmt.Fprintf(os.Stderr, "\r%s: %5.1f%% of %.1f MB", *out, 100*float64(done)/float64(total), float64(total)/1e6)
		}
	})
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return err
	}
	st, _ := os.Stat(*out)
	fmt.Fprintf(os.Stderr, "wrote %s (%s, %s weights, %.1f MB) in %s\n", *out, shape.Name, kind, float64(st.Size())/1e6, time.Since(start).Round(time.Millisecond))
	return nil
}
