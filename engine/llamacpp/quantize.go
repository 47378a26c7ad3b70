package llamacpp

/*
#include <stdlib.h>
#include "llama.h"
*/
import "C"

import (
	"fmt"
	"sort"
	"strings"
	"unsafe"
)

// QuantTypes are the quantizations `qwen3-server quantize` offers
// (llama.cpp's llama_ftype names).
var QuantTypes = map[string]C.enum_llama_ftype{
	"F16": C.LLAMA_FTYPE_MOSTLY_F16, "BF16": C.LLAMA_FTYPE_MOSTLY_BF16,
	"Q8_0": C.LLAMA_FTYPE_MOSTLY_Q8_0, "Q6_K": C.LLAMA_FTYPE_MOSTLY_Q6_K,
	"Q5_K_M": C.LLAMA_FTYPE_MOSTLY_Q5_K_M, "Q5_K_S": C.LLAMA_FTYPE_MOSTLY_Q5_K_S,
	"Q4_K_M": C.LLAMA_FTYPE_MOSTLY_Q4_K_M, "Q4_K_S": C.LLAMA_FTYPE_MOSTLY_Q4_K_S,
	"Q4_0": C.LLAMA_FTYPE_MOSTLY_Q4_0, "Q3_K_M": C.LLAMA_FTYPE_MOSTLY_Q3_K_M,
}

// QuantTypeNames lists QuantTypes' keys, sorted.
func QuantTypeNames() []string {
	var out []string
	for k := range QuantTypes {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Quantize runs llama.cpp's quantizer. Tensors whose rows do not fit the
// chosen type's block size fall back to a compatible type, as in
// llama-quantize.
func Quantize(in, out, typ string, threads int) error {
	ft, ok := QuantTypes[strings.ToUpper(typ)]
	if !ok {
		return fmt.Errorf("unknown quantization %q (%s)", typ, strings.Join(QuantTypeNames(), ", "))
	}
	if err := checkGGUF(in); err != nil {
		return err
	}
	params := C.llama_model_quantize_default_params()
	params.ftype = ft
	params.nthread = C.int32_t(threads)
	cin, cout := C.CString(in), C.CString(out)
	defer C.free(unsafe.Pointer(cin))
	defer C.free(unsafe.Pointer(cout))
	if r := C.llama_model_quantize(cin, cout, &params); r != 0 {
		return fmt.Errorf("llama.cpp could not quantize %s (code %d; see the log)", in, int(r))
	}
	return nil
}
