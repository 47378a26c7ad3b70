// Package merge folds a LoRA adapter into a copy of its base model's
// weights (qwen3-server merge): offline tooling, not on the serving path.
// It must not import the engine; it works on GGUF files alone.
package merge

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/qwen3-lora/qwen3-server/internal/gguf"
)

// Merge writes a copy of the base GGUF with the LoRA adapter (a GGUF LoRA
// file) folded into its weights: W += scale·alpha/r · B·A. The base must be
// F32, F16 or BF16 (merging into quantized weights would quantize twice);
// the output keeps the base's types and layout. progress may be nil.
func Merge(basePath, adapterPath, out string, scale float32, progress func(done, total int)) error {
	base, err := gguf.Open(basePath)
	if err != nil {
		return err
	}
	lora, err := gguf.Open(adapterPath)
	if err != nil {
		return err
	}
	if t, _ := lora.Meta["general.type"].(string); t != "adapter" {
		return fmt.Errorf("%s is not a GGUF LoRA adapter", adapterPath)
	}
	if a, b := base.Meta["general.architecture"], lora.Meta["general.architecture"]; a != b {
		return fmt.Errorf("adapter architecture %v does not match the base's %v", b, a)
	}
	alpha, _ := lora.Meta["adapter.lora.alpha"].(float32)
	type job struct {
		w, a, b gguf.TensorInfo
	}
	var jobs []job
	for _, name := range lora.Order {
		if !strings.HasSuffix(name, ".lora_a") {
			continue
		}
		target := strings.TrimSuffix(name, ".lora_a")
		w, ok := base.Tensors[target]
		if !ok {
			return fmt.Errorf("the base has no tensor %s", target)
		}
		a, b := lora.Tensors[name], lora.Tensors[target+".lora_b"]
		switch w.Type {
		case gguf.F32, gguf.F16, gguf.BF16:
		default:
			return fmt.Errorf("%s is quantized (type %d): merge into the F16, BF16 or F32 GGUF, then run `qwen3-server quantize`", target, w.Type)
		}
		if len(w.Shape) != 2 || len(a.Shape) != 2 || len(b.Shape) != 2 || a.Shape[0] != w.Shape[0] || b.Shape[1] != w.Shape[1] || a.Shape[1] != b.Shape[0] {
			return fmt.Errorf("%s: adapter shapes %v/%v do not fit the base %v", target, a.Shape, b.Shape, w.Shape)
		}
		jobs = append(jobs, job{w, a, b})
	}
	if len(jobs) == 0 {
		return fmt.Errorf("%s holds no LoRA tensors", adapterPath)
	}
	// The output is the base, byte for byte, with the merged tensors'
	// data rewritten in place: types and shapes do not change.
	tmp := out + ".part"
	if err := copyFile(basePath, tmp); err != nil {
		return err
	}
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	af, err := os.Open(adapterPath)
	if err != nil {
		f.Close()
		return err
	}
	defer af.Close()
	for i, j := range jobs {
		rank := j.a.Shape[1]
		s := scale
		if alpha != 0 {
			s = scale * alpha / float32(rank)
		}
		if err := mergeTensor(f, af, j.w, j.a, j.b, s); err != nil {
			f.Close()
			os.Remove(tmp)
			return fmt.Errorf("%s: %w", j.w.Name, err)
		}
		if progress != nil {
			progress(i+1, len(jobs))
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

func mergeTensor(f, af *os.File, w, a, b gguf.TensorInfo, s float32) error {
	in, outDim, r := int(w.Shape[0]), int(w.Shape[1]), int(a.Shape[1])
	W, err := readF32(f, w)
	if err != nil {
		return err
	}
	A, err := readF32(af, a) // [r][in]
	if err != nil {
		return err
	}
	B, err := readF32(af, b) // [out][r]
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	workers := runtime.NumCPU()
	for p := 0; p < workers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := p; o < outDim; o += workers {
				row := W[o*in : (o+1)*in]
				for k := 0; k < r; k++ {
					c := s * B[o*r+k]
					if c == 0 {
						continue
					}
					ak := A[k*in : (k+1)*in]
					for i := range row {
						row[i] += c * ak[i]
					}
				}
			}
		}()
	}
	wg.Wait()
	return writeF32(f, w, W)
}

func readF32(f *os.File, t gguf.TensorInfo) ([]float32, error) {
	n := 1
	for _, d := range t.Shape {
		n *= int(d)
	}
	bpe := t.Type.BytesPerElement()
	buf := make([]byte, n*bpe)
	if _, err := f.ReadAt(buf, int64(t.Offset)); err != nil {
		return nil, err
	}
	out := make([]float32, n)
	for i := range out {
		switch t.Type {
		case gguf.F32:
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
		case gguf.F16:
			out[i] = gguf.F16ToFloat32(binary.LittleEndian.Uint16(buf[2*i:]))
		case gguf.BF16:
			out[i] = gguf.BF16ToFloat32(binary.LittleEndian.Uint16(buf[2*i:]))
		}
	}
	return out, nil
}

func writeF32(f *os.File, t gguf.TensorInfo, v []float32) error {
	bpe := t.Type.BytesPerElement()
	buf := make([]byte, len(v)*bpe)
	for i, x := range v {
		switch t.Type {
		case gguf.F32:
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
		case gguf.F16:
			binary.LittleEndian.PutUint16(buf[2*i:], gguf.Float32ToF16(x))
		case gguf.BF16:
			binary.LittleEndian.PutUint16(buf[2*i:], gguf.Float32ToBF16(x))
		}
	}
	_, err := f.WriteAt(buf, int64(t.Offset))
	return err
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
