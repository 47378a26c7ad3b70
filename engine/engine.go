// Package engine defines what the server asks of an inference engine: a
// small interface, the request and result types, and typed errors. The real
// implementation (continuous batching over llama.cpp) is engine/scheduler;
// engine/fake stands in for it in tests of the layers above. Nothing under
// engine/ knows HTTP (no net/http, no gin) or the layers above it; the
// archtest package checks it.
package engine

import (
	"context"
	"time"
)

// Engine runs generation requests. Implementations are safe for concurrent use.
type Engine interface {
	// Generate runs one request. fn is called on the caller's goroutine for
	// every generated token, in order; returning an error from fn cancels the
	// generation. Generate returns when the sequence has finished, failed,
	// or ctx was cancelled (then with ctx's error, having freed the slot).
	Generate(ctx context.Context, req *Request, fn func(Chunk) error) (*Result, error)
	// Tokenize converts text to tokens; parseSpecial turns control-token text
	// such as "<|im_start|>" into single tokens.
	Tokenize(text string, parseSpecial bool) ([]int32, error)
	// Detokenize converts tokens back to text.
	Detokenize(tokens []int32) string
	// TokenBytes is one token's raw bytes (a fragment of a multi-byte
	// character for some tokens); the pieces of a sequence's tokens
	// concatenate to its text. The slice is shared: do not modify it.
	TokenBytes(tok int32) []byte
	// Info describes the loaded model and context.
	Info() ModelInfo
	// Stats is a snapshot of the scheduler's load.
	Stats() Stats
	// Close stops the engine: queued and running requests end with ErrClosed.
	Close() error
}

// Request is one generation.
type Request struct {
	// Prompt is tokenized with special tokens parsed (it is normally the
	// output of the chat template). PromptTokens, when set, is used instead.
	Prompt       string
	PromptTokens []int32
	// MaxTokens caps generated tokens; 0 means until the context is full.
	MaxTokens int
	// Stop strings end generation; the matched text is not emitted.
	Stop []string
	// IgnoreEOS keeps generating past end-of-generation tokens (benchmarks).
	IgnoreEOS bool
	Sampling  Sampling
	// Grammar constrains output (GBNF; root rule "root").
	Grammar string
	// JSONSchema, when set, constrains output to JSON matching it (converted
	// to a grammar by llama.cpp); `{"type":"object"}` asks for any object.
	// With Grammar also set, the schema's grammar joins it under the rule
	// name "json", for Grammar to embed (tool calls: JSON inside tags).
	JSONSchema []byte
	// Adapters are the LoRA adapters (with scales) this request runs with;
	// empty means the base model. The handles come from the engine's
	// adapter loading (AdapterLoader); at most MaxStackedAdapters.
	Adapters []AdapterUse
	// Reasoning: with ReasoningEnd set, the output starts in the model's
	// reasoning (Qwen3 with thinking on) and the engine counts its tokens
	// (Result.ReasoningTokens): every generated token after a first token
	// equal to ReasoningStartToken (the model opening "<think>" itself; -1
	// when the prompt already opened it) and before ReasoningEndToken
	// ("</think>"), neither tag counted, nor end-of-generation tokens.
	// Output without the opening tag counts from its first token, as the
	// reasoning parser takes it for reasoning too.
	// Thinking budget: when ReasoningBudget >= 0 and that many reasoning
	// tokens were generated, the engine closes the reasoning itself by
	// emitting the ReasoningEnd tokens (for Qwen3: "\n", "</think>", "\n\n"),
	// which are not counted, and sampling resumes for the answer. -1 = no
	// budget.
	ReasoningBudget     int
	ReasoningStartToken int32
	ReasoningEndToken   int32
	ReasoningEnd        []int32
	// Logprobs asks for every generated token's log-probability and its
	// TopLogprobs (0..MaxTopLogprobs) best alternatives, in Chunk.Logprobs.
	// They are the raw log-softmax of the model's logits, before any
	// sampler (temperature, top-k/p, penalties, grammar) touched them.
	// Without it nothing is computed.
	Logprobs    bool
	TopLogprobs int
	// PromptLogprobs asks for the log-probability of every prompt token
	// given the tokens before it, with TopLogprobs alternatives, in the
	// first chunk's PromptLogprobs. Every prompt position then needs its
	// logits, so the prompt is decoded whole: a cached prefix (whose cells
	// have no logits) is not reused.
	PromptLogprobs bool
	// PromptOnly decodes the prompt and generates nothing (scoring a
	// prompt); the one chunk has Token -1 and the finish reason is length.
	PromptOnly bool
	// Priority is the request's class in the queue: PriorityLow requests
	// (batch lines) take only slots no interactive request is waiting for.
	Priority Priority
}

// Priority is a request's class in the engine's queue.
type Priority int

const (
	// PriorityInteractive, the zero value, is every API request's.
	PriorityInteractive Priority = iota
	// PriorityLow is a batch line's: admitted only while no interactive
	// request waits, capped by the engine's low-priority limit, and queued
	// apart so that batch lines never fill the queue interactive requests
	// need.
	PriorityLow
)

// MaxTopLogprobs is the most alternatives a position reports (OpenAI's limit).
const MaxTopLogprobs = 20

// MaxStackedAdapters is the most adapters one Request may stack. Why a
// bound at all: a batch mixing adapter sets runs every (token, adapter) pair
// of a micro-batch as one row of a CUDA grid, at most 65535 rows, so the
// engine checks at start that ubatch_size·MaxStackedAdapters fits; stacks
// of fine-tunes in use are one to three deep.
const MaxStackedAdapters = 8

// TokenLogprob is a token and its log-probability.
type TokenLogprob struct {
	Token   int32
	Logprob float32
}

// Logprob is one position's: the token there and the best alternatives,
// best first (ties: lower token id first).
type Logprob struct {
	TokenLogprob
	Top []TokenLogprob
}

// Adapter is an adapter handle loaded by an engine.
type Adapter interface {
	// Close releases it once no request uses it.
	Close()
}

// AdapterUse is an adapter applied with a scale.
type AdapterUse struct {
	Adapter Adapter
	Scale   float32
}

// AdapterLoader is implemented by engines that load LoRA adapters at run
// time (GGUF LoRA files).
type AdapterLoader interface {
	LoadAdapter(path string) (Adapter, error)
}

// Sampling is the per-request sampler configuration, already resolved from
// presets (see package sampling). Zero values disable a stage; Temperature 0
// is greedy.
type Sampling struct {
	Temperature      float32
	TopK             int
	TopP             float32
	MinP             float32
	RepeatPenalty    float32
	PresencePenalty  float32
	FrequencyPenalty float32
	Seed             *uint32
}

// Chunk is one generated token and the text it completes. Text holds only
// whole UTF-8 characters and never any part of a stop string: bytes that may
// still become either are held back and appear in a later chunk (or never,
// if they turn out to be a stop string).
type Chunk struct {
	Token int32
	Text  string
	// Logprobs (Request.Logprobs) are those of the tokens whose last byte
	// Text releases: none while a token's text is held back, several when
	// held text comes out. Over the stream their bytes concatenate to the
	// text, except that a token cut by a stop string is reported whole;
	// tokens lying wholly inside a cut-off stop string are never reported,
	// nor the end-of-generation token (it has no text).
	Logprobs []Logprob
	// PromptLogprobs (Request.PromptLogprobs), on the first chunk only: one
	// entry per prompt token; the first has Logprob NaN and no Top, as
	// nothing precedes it.
	PromptLogprobs []Logprob
}

// Finish reasons, as OpenAI names them.
const (
	FinishStop   = "stop"
	FinishLength = "length"
)

// Result summarises a finished request.
type Result struct {
	FinishReason     string
	Text             string // everything emitted, concatenated
	PromptTokens     int
	CachedTokens     int // prompt tokens whose KV cells were reused
	CompletionTokens int
	// ReasoningForced is set when the thinking budget closed the reasoning.
	ReasoningForced bool
	// ReasoningTokens counts the reasoning's tokens (see Request).
	ReasoningTokens int
	// TimeToFirstToken counts from submission.
	TimeToFirstToken time.Duration
	Duration         time.Duration
}

// ModelInfo describes the loaded model.
type ModelInfo struct {
	ID           string // model name clients use
	Path         string
	Description  string
	ChatTemplate string
	ContextSize  int // per sequence
	Parallel     int
	VocabSize    int
	Layers       int
	SizeBytes    uint64
	Params       uint64
	Backend      string // "CUDA0 (NVIDIA H100 …)" or "CPU"
	GPULayers    int
}

// Stats is a snapshot of scheduler load.
type Stats struct {
	Slots      int
	BusySlots  int
	QueueDepth int
	QueueSize  int
	// KVCells is the KV cache's size in cells (a cell holds one token's
	// keys and values in every layer: llama.cpp allocates the cache per
	// token, not in blocks). KVCellsUsed counts the cells the running
	// sequences hold (their prompt and output so far); cells an idle slot
	// keeps for prefix reuse are not counted, as they are given up the
	// moment the room is needed.
	KVCells     int
	KVCellsUsed int
	// RunningAdapters and WaitingAdapters are the distinct adapters of the
	// requests running in slots and of those queued (the handles requests
	// brought in Request.Adapters), in no particular order.
	RunningAdapters []Adapter
	WaitingAdapters []Adapter
}

// AddAdapters appends to set the adapters of uses not in it yet.
func AddAdapters(set []Adapter, uses []AdapterUse) []Adapter {
	for _, u := range uses {
		dup := false
		for _, a := range set {
			if a == u.Adapter {
				dup = true
				break
			}
		}
		if !dup {
			set = append(set, u.Adapter)
		}
	}
	return set
}
