// Package safetensors reads and writes the safetensors format (Hugging Face
// and PEFT checkpoints): an 8-byte header length, a JSON header, the data.
// Used by adapters (PEFT folders) and by the offline converters.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
)

// Tensor is one tensor of a safetensors file.
type Tensor struct {
	Name  string
	DType string // F32, F16, BF16
	Shape []int64
	Data  []byte
}

// Read reads a whole safetensors file: an 8-byte little-endian
// header length, a JSON header naming each tensor's dtype, shape and byte
// range, then the data.
func Read(path string) ([]Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return nil, fmt.Errorf("%s: not a safetensors file: %w", path, err)
	}
	if n == 0 || n > 100<<20 {
		return nil, fmt.Errorf("%s: not a safetensors file (header length %d)", path, n)
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return nil, fmt.Errorf("%s: truncated header: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, fmt.Errorf("%s: bad header: %w", path, err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	var out []Tensor
	for name, msg := range raw {
		if name == "__metadata__" {
			continue
		}
		var h struct {
			DType   string   `json:"dtype"`
			Shape   []int64  `json:"shape"`
			Offsets [2]int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(msg, &h); err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %w", path, name, err)
		}
		if h.Offsets[0] < 0 || h.Offsets[1] < h.Offsets[0] || h.Offsets[1] > int64(len(data)) {
			return nil, fmt.Errorf("%s: tensor %s: data range %v outside the file", path, name, h.Offsets)
		}
		elems := int64(1)
		for _, d := range h.Shape {
			elems *= d
		}
		size := map[string]int64{"F32": 4, "F16": 2, "BF16": 2}[h.DType]
		if size == 0 {
			return nil, fmt.Errorf("%s: tensor %s: dtype %s not supported (F32, F16, BF16)", path, name, h.DType)
		}
		if elems*size != h.Offsets[1]-h.Offsets[0] {
			return nil, fmt.Errorf("%s: tensor %s: %d bytes for shape %v %s", path, name, h.Offsets[1]-h.Offsets[0], h.Shape, h.DType)
		}
		out = append(out, Tensor{Name: name, DType: h.DType, Shape: h.Shape, Data: data[h.Offsets[0]:h.Offsets[1]]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Write writes tensors in the given order.
func Write(path string, tensors []Tensor) error {
	hdr := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var off int64
	for _, t := range tensors {
		hdr[t.Name] = map[string]any{"dtype": t.DType, "shape": t.Shape, "data_offsets": []int64{off, off + int64(len(t.Data))}}
		off += int64(len(t.Data))
	}
	h, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := binary.Write(f, binary.LittleEndian, uint64(len(h))); err != nil {
		return err
	}
	if _, err := f.Write(h); err != nil {
		return err
	}
	for _, t := range tensors {
		if _, err := f.Write(t.Data); err != nil {
			return err
		}
	}
	return f.Close()
}
