package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
)

// TensorInfo locates one tensor in a GGUF file.
type TensorInfo struct {
	Name   string
	Shape  []uint64
	Type   TensorType
	Offset uint64 // absolute file offset of the data
}

// File is a parsed GGUF header: scalar metadata (arrays are skipped) and
// the tensors' locations.
type File struct {
	Meta    map[string]any
	Tensors map[string]TensorInfo
	Order   []string
}

// Open parses the header of a GGUF v2/v3 file.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := &reader{r: bufio.NewReaderSize(f, 1<<20)}
	if string(r.bytes(4)) != "GGUF" {
		return nil, fmt.Errorf("%s: not a GGUF file", path)
	}
	if v := r.u32(); v < 2 || v > 3 {
		return nil, fmt.Errorf("%s: GGUF version %d not supported", path, v)
	}
	nt, nkv := r.u64(), r.u64()
	if r.err != nil || nt > 1<<20 || nkv > 1<<20 {
		return nil, fmt.Errorf("%s: bad GGUF header", path)
	}
	out := &File{Meta: map[string]any{}, Tensors: map[string]TensorInfo{}}
	align := uint64(alignment)
	for i := uint64(0); i < nkv && r.err == nil; i++ {
		k := r.str()
		v := r.value(r.u32())
		if v != nil {
			out.Meta[k] = v
		}
		if k == "general.alignment" {
			if a, ok := v.(uint32); ok && a > 0 {
				align = uint64(a)
			}
		}
	}
	var infos []TensorInfo
	for i := uint64(0); i < nt && r.err == nil; i++ {
		t := TensorInfo{Name: r.str()}
		nd := r.u32()
		for d := uint32(0); d < nd && d < 8; d++ {
			t.Shape = append(t.Shape, r.u64())
		}
		t.Type = TensorType(r.u32())
		t.Offset = r.u64()
		infos = append(infos, t)
	}
	if r.err != nil {
		return nil, fmt.Errorf("%s: %w", path, r.err)
	}
	data := (r.n + align - 1) / align * align
	for _, t := range infos {
		t.Offset += data
		out.Tensors[t.Name] = t
		out.Order = append(out.Order, t.Name)
	}
	return out, nil
}

type reader struct {
	r   *bufio.Reader
	n   uint64
	err error
}

func (r *reader) bytes(n uint64) []byte {
	if r.err != nil || n > 1<<30 {
		if r.err == nil {
			r.err = fmt.Errorf("implausible length %d", n)
		}
		return nil
	}
	b := make([]byte, n)
	_, r.err = io.ReadFull(r.r, b)
	r.n += n
	return b
}

func (r *reader) u32() uint32 {
	b := r.bytes(4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

func (r *reader) u64() uint64 {
	b := r.bytes(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

func (r *reader) str() string { return string(r.bytes(r.u64())) }

// value reads a value of type t; arrays are skipped (nil).
func (r *reader) value(t uint32) any {
	switch t {
	case 0, 1, 7: // u8, i8, bool
		if b := r.bytes(1); b != nil {
			return b[0]
		}
		return nil
	case 2, 3: // u16, i16
		r.bytes(2)
		return nil
	case typeUint32, typeInt32:
		return r.u32()
	case typeFloat32:
		return math.Float32frombits(r.u32())
	case typeString:
		return r.str()
	case typeArray:
		et, n := r.u32(), r.u64()
		for i := uint64(0); i < n && r.err == nil; i++ {
			r.value(et)
		}
		return nil
	case typeUint64, 11: // u64, i64
		return r.u64()
	case 12: // f64
		return math.Float64frombits(r.u64())
	}
	r.err = fmt.Errorf("unknown metadata type %d", t)
	return nil
}
