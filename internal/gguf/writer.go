// Package gguf writes (and minimally reads) GGUF files, the container format
// llama.cpp loads models and LoRA adapters from. It exists so that test models,
// benchmark models and converted adapters can be produced in pure Go, without
// Python or network access. The serving path uses it too (PEFT adapters are
// converted to GGUF when loaded), hence internal/ rather than tools/.
package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
)

// Value types of GGUF metadata (gguf.h: enum gguf_type).
const (
	typeUint8   uint32 = 0
	typeInt32   uint32 = 5
	typeUint32  uint32 = 4
	typeFloat32 uint32 = 6
	typeBool    uint32 = 7
	typeString  uint32 = 8
	typeArray   uint32 = 9
	typeUint64  uint32 = 10
)

// TensorType is a ggml tensor element type (ggml.h: enum ggml_type).
type TensorType uint32

const (
	F32  TensorType = 0
	F16  TensorType = 1
	BF16 TensorType = 30
)

// BytesPerElement returns the storage size of one element for the plain
// (non-quantized) types this package writes.
func (t TensorType) BytesPerElement() int {
	switch t {
	case F32:
		return 4
	case F16, BF16:
		return 2
	}
	panic(fmt.Sprintf("gguf: unsupported tensor type %d", t))
}

func (t TensorType) String() string {
	switch t {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case BF16:
		return "BF16"
	}
	return fmt.Sprintf("type%d", uint32(t))
}

const alignment = 32

// Tensor describes one tensor to write. Shape is in ggml order: Shape[0] is
// the innermost (contiguous) dimension. Fill writes exactly the tensor's byte
// size to w; it is called once, in the order the tensors were added, so large
// models stream to disk without being held in memory.
type Tensor struct {
	Name  string
	Shape []uint64
	Type  TensorType
	Fill  func(w io.Writer) error
}

// Elements is the number of elements of the tensor.
func (t Tensor) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Size is the tensor's data size in bytes.
func (t Tensor) Size() uint64 { return t.Elements() * uint64(t.Type.BytesPerElement()) }

type kv struct {
	key   string
	value any
}

// Writer collects metadata and tensors and writes them as one GGUF v3 file.
type Writer struct {
	kvs     []kv
	tensors []Tensor
}

// Set adds a metadata key. Supported value types: string, bool, uint32,
// int32, uint64, float32, []string, []int32, []float32, []uint8 (written as
// an array).
func (w *Writer) Set(key string, value any) { w.kvs = append(w.kvs, kv{key, value}) }

// Add appends a tensor.
func (w *Writer) Add(t Tensor) { w.tensors = append(w.tensors, t) }

// WriteFile writes the GGUF file atomically (to a temporary name first).
func (w *Writer) WriteFile(path string, progress func(done, total uint64)) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 4<<20)
	if err := w.write(bw, progress); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

type countingWriter struct {
	w io.Writer
	n uint64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += uint64(n)
	return n, err
}

func (w *Writer) write(out io.Writer, progress func(done, total uint64)) error {
	cw := &countingWriter{w: out}
	e := &encoder{w: cw}
	e.bytes([]byte("GGUF"))
	e.u32(3)
	e.u64(uint64(len(w.tensors)))
	e.u64(uint64(len(w.kvs)))
	for _, kv := range w.kvs {
		e.str(kv.key)
		e.value(kv.value)
	}
	var offset, total uint64
	for _, t := range w.tensors {
		e.str(t.Name)
		e.u32(uint32(len(t.Shape)))
		for _, d := range t.Shape {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(offset)
		offset = align(offset + t.Size())
		total += t.Size()
	}
	if e.err != nil {
		return e.err
	}
	e.pad(cw.n)
	var done uint64
	for _, t := range w.tensors {
		start := cw.n
		if err := t.Fill(cw); err != nil {
			return fmt.Errorf("tensor %s: %w", t.Name, err)
		}
		if got := cw.n - start; got != t.Size() {
			return fmt.Errorf("tensor %s: wrote %d bytes, want %d", t.Name, got, t.Size())
		}
		e.pad(cw.n)
		done += t.Size()
		if progress != nil {
			progress(done, total)
		}
	}
	return e.err
}

func align(n uint64) uint64 { return (n + alignment - 1) / alignment * alignment }

type encoder struct {
	w   io.Writer
	err error
}

func (e *encoder) bytes(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *encoder) u32(v uint32) { e.bytes(binary.LittleEndian.AppendUint32(nil, v)) }
func (e *encoder) u64(v uint64) { e.bytes(binary.LittleEndian.AppendUint64(nil, v)) }
func (e *encoder) str(s string) { e.u64(uint64(len(s))); e.bytes([]byte(s)) }

func (e *encoder) pad(n uint64) {
	if p := align(n) - n; p > 0 {
		e.bytes(make([]byte, p))
	}
}

func (e *encoder) value(v any) {
	switch v := v.(type) {
	case string:
		e.u32(typeString)
		e.str(v)
	case bool:
		e.u32(typeBool)
		if v {
			e.bytes([]byte{1})
		} else {
			e.bytes([]byte{0})
		}
	case uint32:
		e.u32(typeUint32)
		e.u32(v)
	case int32:
		e.u32(typeInt32)
		e.u32(uint32(v))
	case uint64:
		e.u32(typeUint64)
		e.u64(v)
	case float32:
		e.u32(typeFloat32)
		e.u32(math.Float32bits(v))
	case []string:
		e.u32(typeArray)
		e.u32(typeString)
		e.u64(uint64(len(v)))
		for _, s := range v {
			e.str(s)
		}
	case []int32:
		e.u32(typeArray)
		e.u32(typeInt32)
		e.u64(uint64(len(v)))
		buf := make([]byte, 0, 4*len(v))
		for _, x := range v {
			buf = binary.LittleEndian.AppendUint32(buf, uint32(x))
		}
		e.bytes(buf)
	case []float32:
		e.u32(typeArray)
		e.u32(typeFloat32)
		e.u64(uint64(len(v)))
		buf := make([]byte, 0, 4*len(v))
		for _, x := range v {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
		}
		e.bytes(buf)
	default:
		if e.err == nil {
			e.err = fmt.Errorf("gguf: unsupported metadata type %T", v)
		}
	}
}

// SortedKeys is a helper for deterministic output of map-shaped metadata.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
