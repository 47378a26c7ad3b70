// Package eval evaluates base models and LoRA fine-tunes the way
// LLaMA-Factory's users do: it reads their test sets (alpaca, sharegpt and
// the hand-made raw-chat variant), runs every item through every model —
// in one engine with continuous batching over mixed adapters, or against a
// running server's OpenAI API — and writes LLaMA-Factory's own output files
// (generated_predictions.jsonl, predict_results.json) with the scores of
// package metrics, plus a self-contained HTML report and a terminal table.
//
// It owns the dataset formats, the hold-out split, the prediction files
// (which are also the checkpoint that --resume continues from), the run
// loop with its progress line, the per-model results and the report. It
// renders prompts and parses reasoning only through package conversation,
// exactly as the server does, and drives the engine through the
// engine.Engine interface; the command (cmd/qwen3-server/eval.go) builds the
// real engine. It is offline tooling: nothing on the serving path imports it,
// and it must not import an engine implementation or server/ — except
// server/openai, the wire types, which the --url client speaks.
package eval
