package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/qwen3-lora/qwen3-server/adapters"
	"github.com/qwen3-lora/qwen3-server/tools/merge"
)

// runMerge: qwen3-server merge --base B.gguf --adapter A --out M.gguf
func runMerge(args []string) error {
	fs := pflag.NewFlagSet("merge", pflag.ContinueOnError)
	base := fs.String("base", "", "base model GGUF (F16, BF16 or F32)")
	adapter := fs.String("adapter", "", "GGUF LoRA file or PEFT folder (adapter_config.json + adapter_model.safetensors)")
	out := fs.String("out", "", "merged GGUF to write")
	scale := fs.Float32("scale", 1, "adapter scale")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *base == "" || *adapter == "" || *out == "" {
		return errors.New("usage: qwen3-server merge --base B.gguf --adapter A --out M.gguf [--scale 1]")
	}
	start := time.Now()
	lora := *adapter
	if st, err := os.Stat(lora); err != nil {
		return err
	} else if st.IsDir() {
		tmp, err := os.MkdirTemp("", "merge")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		lora = filepath.Join(tmp, "adapter.gguf")
		info, err := adapters.ConvertPEFT(*adapter, lora)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "converted PEFT adapter: rank %d, alpha %g, %s\n", info.Rank, info.Alpha, strings.Join(info.TargetModules, ", "))
	}
	err := merge.Merge(*base, lora, *out, *scale, func(done, total int) {
		const width = 30
		n := done * width / total
		fmt.Fprintf(os.Stderr, "\rmerging [%s%s] %d/%d tensors", strings.Repeat("#", n), strings.Repeat(".", width-n), done, total)
		if done == total {
			fmt.Fprintln(os.Stderr)
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s in %s\n", *out, time.Since(start).Round(time.Millisecond))
	return nil
}
