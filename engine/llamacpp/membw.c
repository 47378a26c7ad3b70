// Memory read bandwidth, for bench's CPU memory floor. The cgo build is
// baseline x86-64, so the loop is compiled for AVX-512 and AVX2 too and the
// loader picks the widest the CPU has (gcc's target_clones): a plain loop
// reads about 40% slower than the memory allows on the 2-core development
// machines, which would understate the floor.
#include <stddef.h>
#include <stdint.h>
#include "membw.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
uint64_t qs_read_sum(const uint64_t *p, size_t n) {
	uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		s0 += p[i];
		s1 += p[i + 1];
		s2 += p[i + 2];
		s3 += p[i + 3];
		s4 += p[i + 4];
		s5 += p[i + 5];
		s6 += p[i + 6];
		s7 += p[i + 7];
	}
	for (; i < n; i++) s0 += p[i];
	return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}
