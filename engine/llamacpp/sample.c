// Sampling helper for sampler.go; see qs_sample.
#include <math.h>
#include "sample.h"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// block_beats reports whether any of the 16 logits at p exceeds thr. cgo
// compiles with -O2 (no auto-vectorisation), so the x86-64 baseline SSE2
// path is written out; the threshold test is what sampling spends its time
// on, once per 16 of the 151,936 logits.
static inline int block_beats(const float *p, float thr) {
#if defined(__SSE2__)
	__m128 t = _mm_set1_ps(thr);
	__m128 m = _mm_or_ps(_mm_or_ps(_mm_cmpgt_ps(_mm_loadu_ps(p), t), _mm_cmpgt_ps(_mm_loadu_ps(p + 4), t)),
	                     _mm_or_ps(_mm_cmpgt_ps(_mm_loadu_ps(p + 8), t), _mm_cmpgt_ps(_mm_loadu_ps(p + 12), t)));
	return _mm_movemask_ps(m) != 0;
#else
	int any = 0;
	for (int j = 0; j < 16; j++) any |= p[j] > thr;
	return any;
#endif
}

// Insert (id, v) into buf[0..*n), kept sorted by descending logit, capacity k.
static inline void topk_insert(llama_token_data *buf, size_t *n, size_t k, int32_t id, float v) {
	size_t j = *n < k ? (*n)++ : k - 1;
	while (j > 0 && buf[j - 1].logit < v) {
		buf[j] = buf[j - 1];
		j--;
	}
	buf[j].id = id;
	buf[j].logit = v;
	buf[j].p = 0.0f;
}

// select_topk puts the k (<= n_vocab) best logits into buf, sorted by
// descending logit (ties: lower id first), and returns k. It fills the
// buffer, then scans in blocks of 16: a block is looked at element by
// element only if one of its logits beats the current k-th best. The block
// test is branch-free and vectorises, and after the first few blocks almost
// every block is skipped.
static size_t select_topk(const float *logits, int32_t n_vocab, llama_token_data *buf, size_t k) {
	size_t n = 0;
	int32_t i = 0;
	for (; i < n_vocab && n < k; i++) topk_insert(buf, &n, k, i, logits[i]);
	for (; i + 16 <= n_vocab; i += 16) {
		if (!block_beats(logits + i, buf[k - 1].logit)) continue;
		for (int j = 0; j < 16; j++) {
			if (logits[i + j] > buf[k - 1].logit) topk_insert(buf, &n, k, i + j, logits[i + j]);
		}
	}
	for (; i < n_vocab; i++) {
		if (logits[i] > buf[k - 1].logit) topk_insert(buf, &n, k, i, logits[i]);
	}
	return n;
}

// logprobs fills j's log-softmax summary from the raw logits: the maximum,
// the sum of exp(logit - max) in double (151,936 terms), and the lp_n best
// tokens by partial selection. Only called when logprobs were asked for.
static void logprobs(qs_job *j, int32_t n_vocab) {
	const float *l = j->logits;
	float mx = l[0];
	for (int32_t i = 1; i < n_vocab; i++) {
		if (l[i] > mx) mx = l[i];
	}
	double sum = 0;
	for (int32_t i = 0; i < n_vocab; i++) sum += expf(l[i] - mx);
	const float lse = mx + (float)log(sum);
	j->lp_lse = lse;
	int32_t k = j->lp_n < QS_MAX_LOGPROBS ? j->lp_n : QS_MAX_LOGPROBS;
	if (k > n_vocab) k = n_vocab;
	if (k <= 0) return;
	llama_token_data top[QS_MAX_LOGPROBS];
	select_topk(l, n_vocab, top, (size_t)k);
	for (int32_t i = 0; i < k; i++) {
		j->lp_ids[i] = top[i].id;
		j->lp_vals[i] = top[i].logit - lse;
	}
}

// qs_run_job samples j (when it has a chain) and computes its logprobs
// (when asked); the logits are only read.
static void qs_run_job(qs_job *j, int32_t n_vocab) {
	if (j->chain != NULL) j->result = qs_sample(j->chain, j->logits, n_vocab, j->buf, j->fast_k, j->greedy);
	if (j->lp_n >= 0) logprobs(j, n_vocab);
}

// qs_sample picks the next token from one row of logits. When fast_k > 0 the
// caller guarantees that the chain starts with top-k (k <= fast_k) and holds
// no sampler that needs the full vocabulary (grammar, penalties), so the
// k best candidates are selected in one pass over the logits instead of
// materialising and sorting the whole vocabulary; the chain then runs on
// that short, sorted list. greedy short-cuts to argmax. Reentrant: distinct
// samplers may run on distinct threads over the same (read-only) logits.
int32_t qs_sample(struct llama_sampler *chain, const float *logits, int32_t n_vocab,
                  llama_token_data *buf, int32_t fast_k, int greedy) {
	if (greedy) {
		int32_t best = 0, i = 1;
		for (; i + 16 <= n_vocab; i += 16) {
			if (!block_beats(logits + i, logits[best])) continue;
			for (int j = 0; j < 16; j++) {
				if (logits[i + j] > logits[best]) best = i + j;
			}
		}
		for (; i < n_vocab; i++) {
			if (logits[i] > logits[best]) best = i;
		}
		return best;
	}
	size_t n = 0;
	if (fast_k > 0) {
		n = select_topk(logits, n_vocab, buf, (size_t)fast_k);
	} else {
		for (int32_t i = 0; i < n_vocab; i++) {
			buf[i].id = i;
			buf[i].logit = logits[i];
			buf[i].p = 0.0f;
		}
		n = (size_t)n_vocab;
	}
	llama_token_data_array arr = { buf, n, -1, fast_k > 0 };
	llama_sampler_apply(chain, &arr);
	if (arr.selected < 0 || (size_t)arr.selected >= arr.size) return -1;
	return arr.data[arr.selected].id;
}

// ---- Sampling many sequences at once -------------------------------------
//
// The decode loop samples every sequence of a step before it can build the
// next batch, so this is on the critical path. A small pool of C threads
// (created once) takes the jobs; the calling thread works too. Plain
// pthreads rather than goroutines: at 64 sequences the Go scheduler,
// busy with the HTTP handlers' goroutines, did not run the sampling
// goroutines in parallel (measured: 0.9 ms a step, the serial cost).
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_work = PTHREAD_COND_INITIALIZER;
static pthread_cond_t pool_done = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t batch_mu = PTHREAD_MUTEX_INITIALIZER; // one batch at a time
static int pool_size = 0;
static unsigned long pool_gen = 0;
static qs_job *pool_jobs = NULL;
static int pool_njobs = 0;
static int32_t pool_nvocab = 0;
static atomic_int pool_next;
static int pool_busy = 0; // workers still inside the current batch

static void run_jobs(void) {
	for (;;) {
		int i = atomic_fetch_add(&pool_next, 1);
		if (i >= pool_njobs) return;
		qs_run_job(&pool_jobs[i], pool_nvocab);
	}
}

static void *pool_worker(void *arg) {
	(void)arg;
	unsigned long seen = 0;
	pthread_mutex_lock(&pool_mu);
	for (;;) {
		while (pool_gen == seen) pthread_cond_wait(&pool_work, &pool_mu);
		seen = pool_gen;
		pthread_mutex_unlock(&pool_mu);
		run_jobs();
		pthread_mutex_lock(&pool_mu);
		if (--pool_busy == 0) pthread_cond_signal(&pool_done);
	}
	return NULL;
}

// qs_sample_batch samples n jobs with up to `threads` threads in all.
void qs_sample_batch(qs_job *jobs, int n, int32_t n_vocab, int threads) {
	pthread_mutex_lock(&batch_mu);
	pthread_mutex_lock(&pool_mu);
	while (pool_size < threads - 1 && pool_size < 63) {
		pthread_t t;
		if (pthread_create(&t, NULL, pool_worker, NULL) != 0) break;
		pthread_detach(t);
		pool_size++;
	}
	pool_jobs = jobs;
	pool_njobs = n;
	pool_nvocab = n_vocab;
	atomic_store(&pool_next, 0);
	int helpers = pool_size < n - 1 ? pool_size : n - 1;
	if (helpers > 0) {
		// Wake every worker; those beyond `helpers` find no job and return.
		pool_busy = pool_size;
		pool_gen++;
		pthread_cond_broadcast(&pool_work);
	}
	pthread_mutex_unlock(&pool_mu);
	run_jobs();
	pthread_mutex_lock(&pool_mu);
	if (helpers > 0) {
		while (pool_busy > 0) pthread_cond_wait(&pool_done, &pool_mu);
	}
	pool_jobs = NULL;
	pthread_mutex_unlock(&pool_mu);
	pthread_mutex_unlock(&batch_mu);
}
