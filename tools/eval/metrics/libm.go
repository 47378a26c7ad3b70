package metrics

// The reference numbers are computed by CPython, whose math.log and math.exp
// call the C library's log and exp. Go's math.Log and math.Exp are different
// implementations that can differ from glibc's in the last bit for some
// inputs; that is enough to flip jieba's max-probability route where two
// segmentations tie mathematically, or to move a score across a 4th-decimal
// rounding edge. Calling the same C functions keeps the results bit-identical
// to CPython on the same platform.

/*
#cgo LDFLAGS: -lm
#include <math.h>
*/
import "C"

func clog(x float64) float64 { return float64(C.log(C.double(x))) }

func cexp(x float64) float64 { return float64(C.exp(C.double(x))) }
