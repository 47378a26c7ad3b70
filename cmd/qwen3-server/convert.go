package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/qwen3-lora/qwen3-server/tools/convert"
)

// runConvert: qwen3-server convert --in HF_DIR --out MODEL.gguf
func runConvert(args []string) error {
	fs := pflag.NewFlagSet("convert", pflag.ContinueOnError)
	in := fs.String("in", "", "Hugging Face Qwen3 checkpoint folder (config.json, *.safetensors, tokenizer files), e.g. LLaMA-Factory's merged export")
	out := fs.String("out", "", "GGUF to write (weights keep their F16/BF16/F32 type; quantize afterwards)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return errors.New("usage: qwen3-server convert --in HF_DIR --out MODEL.gguf")
	}
	start, last := time.Now(), time.Time{}
	err := convert.Qwen3(*in, *out, func(done, total uint64) {
		if time.Since(last) < 200*time.Millisecond && done != total {
			return
		}
		last = time.Now()
		const width = 30
		n := int(done * width / max(total, 1))
		fmt.Fprintf(os.Stderr, "\rconverting [%s%s] %5.1f%% of %.1f MB", strings.Repeat("#", n), strings.Repeat(".", width-n), 100*float64(done)/float64(max(total, 1)), float64(total)/1e6)
	})
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s in %s\n", *out, time.Since(start).Round(time.Millisecond))
	return nil
}
