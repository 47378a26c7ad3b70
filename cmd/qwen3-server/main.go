// Command qwen3-server serves Qwen3 GGUF models with an OpenAI-compatible
// API. Subcommands:
//
//	serve   run the server
//	run-batch  run a Batch API input file offline (vLLM's run-batch)
//	model   generate test and benchmark models (random or chain weights)
//	bench   measure the engine: raw decode loop against the scheduler
//	quantize  llama.cpp's quantizer (Q8_0, Q4_K_M, …)
//	eval    evaluate the base model and adapters on a test set (LLaMA-Factory's metrics)
//	version print the version
package main

import (
	"fmt"
	"os"
)

var version = "dev"

const usage = `qwen3-server: serve fine-tuned Qwen3 GGUF models (OpenAI-compatible API)

Usage:
  qwen3-server serve [--config FILE] [--model FILE.gguf] [flags]   run the server
  qwen3-server run-batch -i IN.jsonl -o OUT.jsonl [--model FILE.gguf]  batch file offline (- = stdin/stdout)
  qwen3-server model random --shape tiny|qwen3-4b --tokenizer DIR --out FILE
  qwen3-server model chain --tokenizer DIR --out FILE               deterministic test model
  qwen3-server bench --model FILE [--parallel 1,4,16,64] [flags]     raw loop vs scheduler
  qwen3-server quantize --in F16.gguf --out OUT.gguf --type Q4_K_M   llama.cpp's quantizer
  qwen3-server merge --base B.gguf --adapter A --out M.gguf         fold a LoRA into the weights
  qwen3-server convert --in HF_DIR --out MODEL.gguf                 Hugging Face Qwen3 checkpoint to GGUF
  qwen3-server eval --model B.gguf --data TEST.json --models base,NAME=ADAPTER  LLaMA-Factory's BLEU/ROUGE, report
  qwen3-server eval score --predictions generated_predictions.jsonl           score LLaMA-Factory's predictions
  qwen3-server version

Run "qwen3-server COMMAND --help" for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = runServe(os.Args[2:])
	case "run-batch":
		err = runBatch(os.Args[2:])
	case "model":
		err = runModel(os.Args[2:])
	case "bench":
		err = runBench(os.Args[2:])
	case "quantize":
		err = runQuantize(os.Args[2:])
	case "merge":
		err = runMerge(os.Args[2:])
	case "convert":
		err = runConvert(os.Args[2:])
	case "eval":
		err = runEval(os.Args[2:])
	case "version", "--version":
		fmt.Println("qwen3-server", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
