// Declarations shared by sample.c and the cgo preamble of sampler.go, so
// the job layout is defined once.
#ifndef QS_SAMPLE_H
#define QS_SAMPLE_H
#include <stdint.h>
#include "llama.h"

#define QS_MAX_LOGPROBS 20

typedef struct {
	struct llama_sampler *chain; // NULL: no sampling, only the logprobs
	const float *logits;
	llama_token_data *buf;
	int32_t fast_k;
	int32_t greedy;
	int32_t result;
	// Logprobs: lp_n < 0 computes nothing; else lp_lse is log(sum(exp(logits)))
	// (a token's logprob is logits[t] - lp_lse) and lp_ids/lp_vals the lp_n
	// best tokens and their logprobs, best first.
	int32_t lp_n;
	float lp_lse;
	int32_t lp_ids[QS_MAX_LOGPROBS];
	float lp_vals[QS_MAX_LOGPROBS];
} qs_job;

int32_t qs_sample(struct llama_sampler *chain, const float *logits, int32_t n_vocab,
                  llama_token_data *buf, int32_t fast_k, int greedy);
void qs_sample_batch(qs_job *jobs, int n, int32_t n_vocab, int threads);
#endif
