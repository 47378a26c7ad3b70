// Declarations shared by sample.c and the cgo preamble of sampler.go, so
// the job layout is defined once.
#ifndef QS_SAMPLE_H
#define QS_SAMPLE_H
#include <stdint.h>
#include "llama.h"

typedef struct {
	struct llama_sampler *chain;
	const float *logits;
	llama_token_data *buf;
	int32_t fast_k;
	int32_t greedy;
	int32_t result;
} qs_job;

int32_t qs_sample(struct llama_sampler *chain, const float *logits, int32_t n_vocab,
                  llama_token_data *buf, int32_t fast_k, int greedy);
void qs_sample_batch(qs_job *jobs, int n, int32_t n_vocab, int threads);
#endif
