#pragma once
#include <stddef.h>
#include <stdint.h>
// qs_read_sum reads n words and returns their sum (so the reads stay).
uint64_t qs_read_sum(const uint64_t *p, size_t n);
