package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
)

// runQuantize: qwen3-server quantize --in F16.gguf --out Q8.gguf --type Q8_0
func runQuantize(args []string) error {
	fs := pflag.NewFlagSet("quantize", pflag.ContinueOnError)
	in := fs.String("in", "", "input GGUF (F32, F16 or BF16)")
	out := fs.String("out", "", "output GGUF")
	typ := fs.String("type", "Q4_K_M", "quantization: "+strings.Join(llamacpp.QuantTypeNames(), ", "))
	threads := fs.Int("threads", 0, "threads (0 = all cores)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return errors.New("usage: qwen3-server quantize --in MODEL.gguf --out OUT.gguf --type Q4_K_M")
	}
	// llama.cpp prints one line per tensor ("[  12/ 399] blk.1.attn_q.weight
	// ... converting to q8_0"): that is the progress display.
	llamacpp.SetLogger(func(level int, text string) {
		if level >= 2 {
			fmt.Fprint(os.Stderr, text)
		}
	})
	llamacpp.Init("")
	start := time.Now()
	if err := llamacpp.Quantize(*in, *out, *typ, *threads); err != nil {
		return err
	}
	st, err := os.Stat(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%s, %.1f MB) in %s\n", *out, strings.ToUpper(*typ), float64(st.Size())/1e6, time.Since(start).Round(time.Millisecond))
	return nil
}
