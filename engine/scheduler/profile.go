package scheduler

import (
	"time"
)

// Profile is where the decode loop's time went, cumulatively.
type Profile struct {
	Steps  int
	Launch time.Duration // llama_decode call (synchronous for batches > 1 on CUDA)
	Book   time.Duration // KV book-keeping
	Wait   time.Duration // waiting for the GPU's logits
	Sample time.Duration // sampling (parallel over sequences)
	Accept time.Duration // detokenize, stop strings, hand-off

	// The same for the steps that only decode (no prompt chunk): what a
	// generated token costs, without the prefill's long launches.
	DecodeSteps  int
	DecodeLaunch time.Duration
	DecodeWait   time.Duration
}

// Profile returns the loop's cumulative timings (read it when idle).
func (e *Engine) Profile() Profile {
	e.profMu.Lock()
	defer e.profMu.Unlock()
	return e.prof
}
