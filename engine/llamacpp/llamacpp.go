// Package llamacpp is the project's only cgo package: a thin, memory-safe
// wrapper over llama.cpp's C API as vendored by github.com/ollama/ollama/llama
// (v0.17.4), patched by us (go.mod replaces the module by build/ollama-src,
// which `make llama-src` makes: engine/llamacpp/patches/llama-*.patch, the
// per-sequence adapters of SetSeqAdapters). That package compiles llama.cpp
// and ggml into the binary; this
// one binds the few functions the scheduler needs with Go-owned handles that
// have idempotent Close methods, frees every C string it makes, and exposes
// a sampling entry point that can run on several goroutines at once.
//
// Nothing here is safe for concurrent use unless a comment says so: the
// engine's scheduler owns each Context from a single goroutine.
package llamacpp

/*
// -rdynamic exports the binary's ggml to the CPU backend variants that Init
// loads from lib/ollama: `make cpu` builds them without a libggml-base of
// their own, so the process holds one ggml (its globals, log sink and
// thread state) whichever backend runs a graph.
#cgo LDFLAGS: -ldl -rdynamic
#cgo CFLAGS: -D_GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#include "ggml.h"
#include "ggml-backend.h"
#include "llama.h"
#include "llama-qs.h"

extern void goLlamaLog(int level, char *text);

static void qs_log(enum ggml_log_level level, const char *text, void *user) {
	(void)user;
	goLlamaLog((int)level, (char *)text);
}

static void qs_set_log(void) {
	llama_log_set(qs_log, NULL);
	ggml_log_set(qs_log, NULL);
}

// qs_object_path names the shared object (or the binary) that holds p:
// which CPU backend variant registered a device.
static const char *qs_object_path(const void *p) {
	Dl_info info;
	if (p == NULL || dladdr(p, &info) == 0) return "";
	return info.dli_fname ? info.dli_fname : "";
}

typedef struct ggml_backend_feature *(*qs_get_features_fn)(ggml_backend_reg_t);

static struct ggml_backend_feature *qs_features(ggml_backend_reg_t reg) {
	qs_get_features_fn fn = (qs_get_features_fn)ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features");
	return fn ? fn(reg) : NULL;
}

// A persistent thread pool for a context's CPU work. Without one, ggml
// creates and joins its worker threads for every graph: 15 pthread_create
// and join a decoded token at 16 threads. It must come from the CPU backend
// that computes, through its registry: the binary's own ggml-cpu symbols are
// the baseline build, and a pool made by them would run baseline kernels.
// poll 0: between graphs the workers sleep instead of spinning, so that the
// HTTP server's goroutines get the cores while a token is sampled and sent
// (polling levels 1, 10 and 50 were no better, BENCHMARKS.md issue 12).
typedef struct ggml_threadpool *(*qs_tp_new_fn)(struct ggml_threadpool_params *);
typedef void (*qs_tp_free_fn)(struct ggml_threadpool *);

static void *qs_cpu_proc(const char *name) {
	ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
	ggml_backend_reg_t reg = dev ? ggml_backend_dev_backend_reg(dev) : NULL;
	return reg ? ggml_backend_reg_get_proc_address(reg, name) : NULL;
}

static struct ggml_threadpool *qs_cpu_threadpool_new(int n_threads) {
	qs_tp_new_fn fn = (qs_tp_new_fn)qs_cpu_proc("ggml_threadpool_new");
	if (fn == NULL) return NULL;
	struct ggml_threadpool_params p;
	ggml_threadpool_params_init(&p, n_threads);
	p.poll = 0;
	return fn(&p);
}

static void qs_cpu_threadpool_free(struct ggml_threadpool *tp) {
	qs_tp_free_fn fn = (qs_tp_free_fn)qs_cpu_proc("ggml_threadpool_free");
	if (fn != NULL && tp != NULL) fn(tp);
}

static void *qs_preload(const char *path) {
	return dlopen(path, RTLD_NOW | RTLD_GLOBAL);
}

static void qs_batch_add(struct llama_batch *b, llama_token tok, llama_pos pos, llama_seq_id seq, int8_t logits) {
	int i = b->n_tokens++;
	b->token[i] = tok;
	b->pos[i] = pos;
	b->n_seq_id[i] = 1;
	b->seq_id[i][0] = seq;
	b->logits[i] = logits;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	ollamallama "github.com/ollama/ollama/llama"
)

// LogFunc receives llama.cpp and ggml log lines. level follows ggml_log_level
// (1 debug, 2 info, 3 warn, 4 error, 5 continuation).
var logFunc func(level int, text string)
var logMu sync.Mutex

//export goLlamaLog
func goLlamaLog(level C.int, text *C.char) {
	logMu.Lock()
	f := logFunc
	logMu.Unlock()
	if f != nil {
		f(int(level), C.GoString(text))
	}
}

// SetLogger routes llama.cpp's and ggml's log output to f (nil silences it).
func SetLogger(f func(level int, text string)) {
	logMu.Lock()
	logFunc = f
	logMu.Unlock()
	C.qs_set_log()
}

// Device is a ggml compute device.
type Device struct {
	Name        string
	Description string
	Type        string // "cpu", "gpu", "igpu", "accel"
	MemFree     uint64
	MemTotal    uint64
}

var initOnce sync.Once

// Init loads the ggml backends once per process. libDir is the folder that
// holds optional GPU backends (libggml-cuda.so); its libggml-base.so is
// loaded first, globally, so that the CUDA backend's dependency resolves
// without LD_LIBRARY_PATH. ggml itself searches <executable>/../lib/ollama.
func Init(libDir string) {
	initOnce.Do(func() {
		// The fused single-token LoRA path of our ggml-cuda build is on:
		// it once gave wrong tokens now and then with several adapted
		// requests at once (gate's and up's A·x shared memory in the
		// graph's allocation; fixed in ggml-cuda-lora-fusion.patch, the
		// scheduler's adapter tests pass five times in a row on an H200).
		// QWEN3_CUDA_LORA_FUSION=0 turns it off (GGML_CUDA_DISABLE_LORA_FUSION).
		if os.Getenv("QWEN3_CUDA_LORA_FUSION") == "0" {
			os.Setenv("GGML_CUDA_DISABLE_LORA_FUSION", "1")
		}
		if libDir != "" {
			for _, name := range []string{"libggml-base.so.0", "libggml-base.so"} {
				p := filepath.Join(libDir, name)
				if _, err := os.Stat(p); err != nil {
					continue
				}
				cs := C.CString(p)
				h := C.qs_preload(cs)
				C.free(unsafe.Pointer(cs))
				if h != nil {
					break
				}
			}
		}
		// ollama's loader only searches OLLAMA_LIBRARY_PATH or
		// <executable>/../lib/ollama; load from libDir here instead (tests
		// and a configured model.lib_dir have other paths) and give it an
		// empty path so nothing is registered twice.
		os.Setenv("OLLAMA_LIBRARY_PATH", "")
		if st, err := os.Stat(libDir); err == nil && st.IsDir() {
			cs := C.CString(libDir)
			C.ggml_backend_load_all_from_path(cs)
			C.free(unsafe.Pointer(cs))
		}
		ollamallama.BackendInit()
	})
}

// CPUBackend is the CPU backend llama.cpp computes with: ggml registers the
// built-in one (compiled by cgo for baseline x86-64: SSE2 only) and every
// variant that Init loaded, and uses the best-scoring one the CPU supports.
type CPUBackend struct {
	// Library is the variant's file (libggml-cpu-haswell.so …), or "" for
	// the built-in backend.
	Library string
	// Features are ggml's feature flags of that backend (AVX2, FMA, …).
	Features []string
}

// String is the form the start-up log prints.
func (b CPUBackend) String() string {
	lib := "built-in (baseline x86-64; `make cpu` builds faster variants)"
	if b.Library != "" {
		lib = b.Library
	}
	return lib + ": " + strings.Join(b.Features, " ")
}

// CPUBackendInUse describes the CPU device llama.cpp picks (the first CPU
// device in ggml's registry, which is sorted by score). Call after Init.
func CPUBackendInUse() CPUBackend {
	d := C.ggml_backend_dev_by_type(C.GGML_BACKEND_DEVICE_TYPE_CPU)
	if d == nil {
		return CPUBackend{}
	}
	reg := C.ggml_backend_dev_backend_reg(d)
	var b CPUBackend
	if obj := C.GoString(C.qs_object_path(unsafe.Pointer(reg))); strings.HasSuffix(obj, ".so") {
		b.Library = filepath.Base(obj)
	}
	if f := C.qs_features(reg); f != nil {
		for p := unsafe.Pointer(f); ; p = unsafe.Add(p, unsafe.Sizeof(*f)) {
			feat := (*C.struct_ggml_backend_feature)(p)
			if feat.name == nil {
				break
			}
			name, val := C.GoString(feat.name), C.GoString(feat.value)
			if val != "1" {
				name += "=" + val
			}
			b.Features = append(b.Features, name)
		}
	}
	return b
}

// Devices lists the compute devices ggml registered. Call after Init.
func Devices() []Device {
	var out []Device
	for i := C.size_t(0); i < C.ggml_backend_dev_count(); i++ {
		d := C.ggml_backend_dev_get(i)
		var free, total C.size_t
		C.ggml_backend_dev_memory(d, &free, &total)
		t := "cpu"
		switch C.ggml_backend_dev_type(d) {
		case C.GGML_BACKEND_DEVICE_TYPE_GPU:
			t = "gpu"
		case C.GGML_BACKEND_DEVICE_TYPE_IGPU:
			t = "igpu"
		case C.GGML_BACKEND_DEVICE_TYPE_ACCEL:
			t = "accel"
		}
		out = append(out, Device{
			Name:        C.GoString(C.ggml_backend_dev_name(d)),
			Description: C.GoString(C.ggml_backend_dev_description(d)),
			Type:        t,
			MemFree:     uint64(free),
			MemTotal:    uint64(total),
		})
	}
	return out
}

// GPUs is Devices filtered to GPUs.
func GPUs() []Device {
	var out []Device
	for _, d := range Devices() {
		if d.Type == "gpu" || d.Type == "igpu" {
			out = append(out, d)
		}
	}
	return out
}

// ModelParams configure LoadModel.
type ModelParams struct {
	Path      string
	GPULayers int // -1 = all
	MainGPU   int
	NoMmap    bool
	VocabOnly bool
}

// Model is a loaded GGUF model. Its methods other than Close are safe for
// concurrent use (llama.cpp's model and vocab are read-only after load).
type Model struct {
	mu     sync.Mutex
	c      *C.struct_llama_model
	vocab  *C.struct_llama_vocab
	nVocab int
	pieces [][]byte
}

// checkGGUF gives a clear error for a missing, unreadable or non-GGUF file
// before llama.cpp sees it.
func checkGGUF(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("model file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("model file: %w", err)
	}
	if st.IsDir() {
		return fmt.Errorf("model file %s: is a directory", path)
	}
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil || string(magic) != "GGUF" {
		return fmt.Errorf("model file %s: not a GGUF file (magic %q)", path, magic)
	}
	return nil
}

// LoadModel loads a GGUF model.
func LoadModel(p ModelParams) (*Model, error) {
	if err := checkGGUF(p.Path); err != nil {
		return nil, err
	}
	params := C.llama_model_default_params()
	params.n_gpu_layers = C.int32_t(p.GPULayers)
	if p.GPULayers < 0 {
		params.n_gpu_layers = 999
	}
	params.main_gpu = C.int32_t(p.MainGPU)
	params.use_mmap = C.bool(!p.NoMmap)
	params.vocab_only = C.bool(p.VocabOnly)
	cpath := C.CString(p.Path)
	defer C.free(unsafe.Pointer(cpath))
	m := C.llama_model_load_from_file(cpath, params)
	if m == nil {
		return nil, fmt.Errorf("llama.cpp could not load %s (corrupt, truncated or unsupported GGUF; see the log above)", p.Path)
	}
	model := &Model{c: m, vocab: C.llama_model_get_vocab(m)}
	model.nVocab = int(C.llama_vocab_n_tokens(model.vocab))
	// Every token's bytes, computed once: the decode loop turns each
	// generated token into text, and a table lookup costs neither a cgo
	// call nor an allocation.
	model.pieces = make([][]byte, model.nVocab)
	for t := range model.pieces {
		model.pieces[t] = model.tokenPiece(int32(t))
	}
	return model, nil
}

// Close frees the model. Idempotent.
func (m *Model) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.c != nil {
		C.llama_model_free(m.c)
		m.c = nil
	}
}

// NVocab is the vocabulary size.
func (m *Model) NVocab() int { return m.nVocab }

// NLayer, NEmbd and NCtxTrain describe the architecture.
func (m *Model) NLayer() int    { return int(C.llama_model_n_layer(m.c)) }
func (m *Model) NEmbd() int     { return int(C.llama_model_n_embd(m.c)) }
func (m *Model) NCtxTrain() int { return int(C.llama_model_n_ctx_train(m.c)) }

// Size is the weights' size in bytes, NParams their count.
func (m *Model) Size() uint64    { return uint64(C.llama_model_size(m.c)) }
func (m *Model) NParams() uint64 { return uint64(C.llama_model_n_params(m.c)) }

// Desc is llama.cpp's one-line description (architecture, size, type).
func (m *Model) Desc() string {
	buf := make([]byte, 256)
	n := C.llama_model_desc(m.c, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	if n < 0 {
		return ""
	}
	return string(buf[:min(int(n), len(buf)-1)])
}

// Meta returns a GGUF metadata value as a string.
func (m *Model) Meta(key string) (string, bool) {
	ck := C.CString(key)
	defer C.free(unsafe.Pointer(ck))
	n := C.llama_model_meta_val_str(m.c, ck, nil, 0)
	if n < 0 {
		return "", false
	}
	buf := make([]byte, int(n)+1)
	C.llama_model_meta_val_str(m.c, ck, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	return string(buf[:n]), true
}

// ChatTemplate is the GGUF's tokenizer.chat_template, or "".
func (m *Model) ChatTemplate() string {
	t := C.llama_model_chat_template(m.c, nil)
	if t == nil {
		return ""
	}
	return C.GoString(t)
}

// IsEOG reports whether tok ends generation (<|im_end|>, <|endoftext|>, …).
func (m *Model) IsEOG(tok int32) bool { return bool(C.llama_vocab_is_eog(m.vocab, C.llama_token(tok))) }

// Tokenize converts text to tokens. parseSpecial makes control tokens such
// as <|im_start|> single tokens (prompts built from the chat template need
// it; user-supplied raw text usually does not).
func (m *Model) Tokenize(text string, addSpecial, parseSpecial bool) ([]int32, error) {
	if len(text) == 0 {
		return []int32{}, nil
	}
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	n := len(text) + 2
	for attempt := 0; attempt < 2; attempt++ {
		toks := make([]int32, n)
		r := C.llama_tokenize(m.vocab, ctext, C.int32_t(len(text)), (*C.llama_token)(unsafe.Pointer(&toks[0])), C.int32_t(n), C.bool(addSpecial), C.bool(parseSpecial))
		if r >= 0 {
			return toks[:r], nil
		}
		n = int(-r)
	}
	return nil, errors.New("tokenization failed")
}

// TokenPiece returns the bytes of one token (special tokens rendered as
// their text). A piece may be a fragment of a multi-byte UTF-8 character.
// The slice is shared: callers must not modify it.
func (m *Model) TokenPiece(tok int32) []byte {
	if tok < 0 || int(tok) >= len(m.pieces) {
		return nil
	}
	return m.pieces[tok]
}

func (m *Model) tokenPiece(tok int32) []byte {
	var small [32]byte
	n := C.llama_token_to_piece(m.vocab, C.llama_token(tok), (*C.char)(unsafe.Pointer(&small[0])), C.int32_t(len(small)), 0, true)
	if n >= 0 {
		return append([]byte(nil), small[:n]...)
	}
	buf := make([]byte, -n)
	n = C.llama_token_to_piece(m.vocab, C.llama_token(tok), (*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(len(buf)), 0, true)
	if n < 0 {
		return nil
	}
	return buf[:n]
}

// ContextParams configure a llama context.
type ContextParams struct {
	NCtx      int    // total KV cells over all sequences
	NBatch    int    // logical batch: most tokens one Decode takes
	NUBatch   int    // physical batch
	NSeqMax   int    // parallel sequences
	Threads   int    // CPU threads (0 = AutoThreads)
	FlashAttn string // "auto", "on", "off"
	KVType    string // "f16", "q8_0", "q4_0"

	// KVUnified puts every sequence in one KV cache of NCtx cells (each may
	// use all of them) instead of a stream of NCtx/NSeqMax cells each.
	KVUnified bool
}

// Context is a llama context: KV cache and compute buffers.
type Context struct {
	c      *C.struct_llama_context
	tp     *C.struct_ggml_threadpool // the CPU backend's pool for c (nil: ggml's per-graph threads)
	nVocab int
}

func ggmlType(kv string) (C.enum_ggml_type, error) {
	switch strings.ToLower(kv) {
	case "", "f16":
		return C.GGML_TYPE_F16, nil
	case "q8_0":
		return C.GGML_TYPE_Q8_0, nil
	case "q4_0":
		return C.GGML_TYPE_Q4_0, nil
	}
	return 0, fmt.Errorf("unknown KV cache type %q (f16, q8_0, q4_0)", kv)
}

// NewContext creates a context on m.
func NewContext(m *Model, p ContextParams) (*Context, error) {
	kv, err := ggmlType(p.KVType)
	if err != nil {
		return nil, err
	}
	params := C.llama_context_default_params()
	params.n_ctx = C.uint32_t(p.NCtx)
	params.n_batch = C.uint32_t(p.NBatch)
	params.n_ubatch = C.uint32_t(min(p.NUBatch, p.NBatch))
	params.n_seq_max = C.uint32_t(p.NSeqMax)
	threads, pool := p.Threads, false
	if threads <= 0 {
		threads, pool = AutoThreads()
	}
	switch os.Getenv("QWEN3_CPU_THREADPOOL") { // forces the pool on or off
	case "1":
		pool = true
	case "0":
		pool = false
	}
	params.n_threads = C.int32_t(threads)
	params.n_threads_batch = C.int32_t(threads)
	params.type_k = kv
	params.type_v = kv
	params.no_perf = true
	params.kv_unified = C.bool(p.KVUnified)
	switch strings.ToLower(p.FlashAttn) {
	case "on", "true", "enabled":
		params.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_ENABLED
	case "off", "false", "disabled":
		params.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_DISABLED
	default:
		params.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_AUTO
	}
	// The library must be the patched one the header is (llama-qs.h, see
	// adapter.go): a stale .deps/include could pair another.
	if v := int(C.llama_qs_patch_version()); v != int(C.LLAMA_QS_PATCH_VERSION) {
		return nil, fmt.Errorf("llama.cpp was built from patch version %d, this package expects %d: run make deps", v, int(C.LLAMA_QS_PATCH_VERSION))
	}
	c := C.llama_init_from_model(m.c, params)
	if c == nil {
		return nil, errors.New("llama.cpp could not create a context (out of memory? try a smaller ctx_size or parallel)")
	}
	ctx := &Context{c: c, nVocab: m.nVocab}
	if threads > 1 && pool {
		if ctx.tp = C.qs_cpu_threadpool_new(C.int(threads)); ctx.tp != nil {
			C.llama_attach_threadpool(c, ctx.tp, ctx.tp)
		}
	}
	return ctx, nil
}

// AutoThreads is the CPU thread count for ContextParams.Threads 0, and
// whether the context gets a persistent thread pool. Below 8 cores: every
// core, and ggml's threads made for each graph. From 8 cores: three
// quarters of them, with a pool. Measured on a 16-core host (BENCHMARKS.md,
// issue 12): ggml makes and joins 15 threads for every graph at 16 threads,
// and a pool removes that, but with every core holding a ggml thread the
// HTTP server's goroutines preempt one at each token, the others run out of
// spin at the next barrier, and one HTTP stream fell to 98-181 tok/s. With
// 12 threads and a pool it gave 352-448, against 243-285 with 16 threads
// and no pool (0.59-0.91 of the machine's memory floor against 0.38-0.59),
// 16 streams 0-17% fewer.
func AutoThreads() (threads int, pool bool) { return autoThreads(runtime.NumCPU()) }

func autoThreads(n int) (threads int, pool bool) {
	if n < 8 {
		return n, false
	}
	return n * 3 / 4, true
}

// Close frees the context, then its thread pool. Idempotent.
func (c *Context) Close() {
	if c.c != nil {
		// Safe with the CUDA backend loaded since our llama.cpp patch
		// frees the context's scheduler before its backends
		// (TestGPUAdapterChurnFreesMemory).
		C.llama_free(c.c)
		c.c = nil
	}
	if c.tp != nil {
		C.qs_cpu_threadpool_free(c.tp)
		c.tp = nil
	}
}

// GraphsReused is how many decodes since the context was made reused the
// previous decode's graph instead of building and allocating it again.
func (c *Context) GraphsReused() int { return int(C.llama_perf_context(c.c).n_reused) }

// NCtx is the total number of KV cells; NCtxSeq the cells one sequence may use.
func (c *Context) NCtx() int    { return int(C.llama_n_ctx(c.c)) }
func (c *Context) NCtxSeq() int { return int(C.llama_n_ctx_seq(c.c)) }

// ErrNoKVSlot means the batch did not fit in the KV cache. llama.cpp finds
// the cells for the whole batch before computing anything, so the cache is
// as it was: the caller may retry with a smaller batch.
var ErrNoKVSlot = errors.New("llama_decode: no KV cache slot for the batch")

// Decode runs the model on a batch. Each token runs with its sequence's
// adapters (SetSeqAdapters).
func (c *Context) Decode(b *Batch) error {
	r := C.llama_decode(c.c, b.c)
	switch {
	case r == 0:
		return nil
	case r == 1:
		return ErrNoKVSlot
	}
	return fmt.Errorf("llama_decode failed with code %d", int(r))
}

// SeqRm removes KV cells of seq in positions [p0, p1) (p1 < 0: to the end).
func (c *Context) SeqRm(seq, p0, p1 int) bool {
	return bool(C.llama_memory_seq_rm(C.llama_get_memory(c.c), C.llama_seq_id(seq), C.llama_pos(p0), C.llama_pos(p1)))
}

// SeqPosMax is the last position seq holds KV cells for, -1 when it holds
// none (its cells are positions 0..SeqPosMax, as the scheduler fills them).
func (c *Context) SeqPosMax(seq int) int {
	return int(C.llama_memory_seq_pos_max(C.llama_get_memory(c.c), C.llama_seq_id(seq)))
}

// Logits returns the logits of batch row i as a view into llama.cpp's
// buffer: valid until the next Decode, and never to be written.
func (c *Context) Logits(i int) []float32 {
	p := C.llama_get_logits_ith(c.c, C.int32_t(i))
	if p == nil {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(p)), c.nVocab)
}

// Batch is a llama_batch of single-sequence tokens.
type Batch struct {
	c   C.struct_llama_batch
	cap int
	ok  bool
}

// NewBatch allocates a batch for up to n tokens.
func NewBatch(n int) *Batch {
	return &Batch{c: C.llama_batch_init(C.int32_t(n), 0, 1), cap: n, ok: true}
}

// Add appends a token at pos for seq; logits asks for its output row.
func (b *Batch) Add(tok int32, pos, seq int, logits bool) {
	if int(b.c.n_tokens) >= b.cap {
		panic("llamacpp: batch overflow")
	}
	var l C.int8_t
	if logits {
		l = 1
	}
	C.qs_batch_add(&b.c, C.llama_token(tok), C.llama_pos(pos), C.llama_seq_id(seq), l)
}

// Len is the number of tokens in the batch; Cap its capacity.
func (b *Batch) Len() int { return int(b.c.n_tokens) }
func (b *Batch) Cap() int { return b.cap }

// Clear empties the batch.
func (b *Batch) Clear() { b.c.n_tokens = 0 }

// Close frees the batch. Idempotent.
func (b *Batch) Close() {
	if b.ok {
		C.llama_batch_free(b.c)
		b.ok = false
	}
}
