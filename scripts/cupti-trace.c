// A kernel timeline of a real run, for scripts/gpu-trace-lora.sh (issue 14).
//
// Nsight Compute (the only profiler the CUDA image has) times each kernel
// alone, serialized and with cold caches, so it cannot show what decides a
// decode step's length on a GPU: how long each kernel runs beside the
// others, and where the GPU waits between kernels (programmatic dependent
// launch makes kernels overlap; CUDA graphs make the gaps small but not
// nil). This is a CUDA injection library (CUDA_INJECTION64_PATH): CUDA calls
// InitializeInjection when it initializes, and CUPTI's activity API then
// records every kernel's GPU start and end, graph launches included,
// without serializing them (CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL).
//
// Environment:
//   CUPTI_TRACE_OUT    file to write (required), one line a kernel:
//                      start_ns end_ns stream grid_x grid_y grid_z block_x name
//   CUPTI_TRACE_SKIP   kernels to skip first (model load, prefill), default 0
//   CUPTI_TRACE_COUNT  kernels to write after those, default 50000
//
// Only fields of the kernel record that every CUPTI version since
// CUpti_ActivityKernel4 has at the same place are read; the build picks the
// header's newest record (KREC, see gpu-trace-lora.sh).
//
// Build: gcc -O2 -shared -fPIC -DKREC=CUpti_ActivityKernelN -I<cupti include>
//        -o libcupti-trace.so scripts/cupti-trace.c -L<cupti lib> -lcupti

#include <cupti.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef KREC
#define KREC CUpti_ActivityKernel4
#endif
#define STR2(x) #x
#define STR(x) STR2(x)
#define KREC_NAME STR(KREC)

// Small buffers and a flush period: a Go program's os.Exit skips atexit,
// so what CUPTI holds at exit is lost; each completed buffer is written
// (and the file flushed) at once.
#define BUF_SIZE (1u << 20)

static FILE *    trace_out;
static uint64_t  trace_skip;
static uint64_t  trace_count = 50000;
static uint64_t  trace_seen;
static uint64_t  trace_written;
static uint64_t  trace_dropped;

static void check(CUptiResult r, const char * what) {
    if (r != CUPTI_SUCCESS) {
        const char * s = "?";
        cuptiGetResultString(r, &s);
        fprintf(stderr, "cupti-trace: %s: %s\n", what, s);
        exit(1);
    }
}

static void CUPTIAPI buffer_requested(uint8_t ** buffer, size_t * size, size_t * max_records) {
    // CUPTI wants 8-byte alignment
    *buffer = (uint8_t *) aligned_alloc(8, BUF_SIZE);
    *size = *buffer ? BUF_SIZE : 0;
    *max_records = 0;
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t * buffer, size_t size, size_t valid) {
    (void) ctx;
    (void) stream;
    (void) size;
    CUpti_Activity * rec = NULL;
    while (cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
        if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && rec->kind != CUPTI_ACTIVITY_KIND_KERNEL) {
            continue;
        }
        const KREC * k = (const KREC *) rec;
        const uint64_t n = trace_seen++;
        if (n < trace_skip || n >= trace_skip + trace_count) {
            continue;
        }
        trace_written++;
        fprintf(trace_out, "%llu %llu %u %d %d %d %d %s\n", (unsigned long long) k->start, (unsigned long long) k->end,
                k->streamId, k->gridX, k->gridY, k->gridZ, k->blockX, k->name ? k->name : "?");
    }
    size_t dropped = 0;
    if (cuptiActivityGetNumDroppedRecords(ctx, stream, &dropped) == CUPTI_SUCCESS) {
        trace_dropped += dropped;
    }
    fflush(trace_out);
    free(buffer);
}

static void flush_at_exit(void) {
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    if (trace_out) {
        fflush(trace_out);
        fclose(trace_out);
        trace_out = NULL;
    }
    fprintf(stderr, "cupti-trace: %llu kernels recorded, %llu written after the first %llu, %llu records dropped\n",
            (unsigned long long) trace_seen, (unsigned long long) trace_written, (unsigned long long) trace_skip,
            (unsigned long long) trace_dropped);
}

int InitializeInjection(void) {
    const char * out = getenv("CUPTI_TRACE_OUT");
    if (out == NULL || (trace_out = fopen(out, "w")) == NULL) {
        fprintf(stderr, "cupti-trace: set CUPTI_TRACE_OUT to a writable file\n");
        exit(1);
    }
    const char * e;
    if ((e = getenv("CUPTI_TRACE_SKIP")) != NULL) {
        trace_skip = strtoull(e, NULL, 10);
    }
    if ((e = getenv("CUPTI_TRACE_COUNT")) != NULL) {
        trace_count = strtoull(e, NULL, 10);
    }
    // the fields read, where CUpti_ActivityKernel4..8 have them: 16 24 48 52 64 104
    fprintf(stderr, "cupti-trace: %s: start %zu end %zu streamId %zu gridX %zu blockX %zu name %zu\n", KREC_NAME,
            offsetof(KREC, start), offsetof(KREC, end), offsetof(KREC, streamId), offsetof(KREC, gridX), offsetof(KREC, blockX),
            offsetof(KREC, name));
    check(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed), "cuptiActivityRegisterCallbacks");
    check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "cuptiActivityEnable(CONCURRENT_KERNEL)");
    check(cuptiActivityFlushPeriod(50), "cuptiActivityFlushPeriod");
    atexit(flush_at_exit); // for programs that do call exit
    return 1;
}
