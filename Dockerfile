# Multi-stage build, in step with the Makefile targets (make deps, build,
# cpu, ggml-src, cuda). The CPU backend is built for every x86-64 level and
# the binary picks the best one where it runs, so the image is as fast on the
# CPU of the machine that runs it as on the one that built it. Docker cannot run on the development machines; the
# Makefile targets it calls are the tested path.
#
#   docker build -t qwen3-server --build-arg CUDA_ARCH=90 .
#   docker run --gpus all -p 8080:8080 -v /path/to/models:/models \
#     qwen3-server serve --model /models/Qwen3-4B-Q8_0.gguf --addr 0.0.0.0:8080

ARG CUDA_VERSION=13.0.0
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS go

FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu24.04 AS build
ARG CUDA_ARCH=90
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake make git patch patchelf ca-certificates nlohmann-json3-dev libstb-dev \
    && rm -rf /var/lib/apt/lists/*
COPY --from=go /usr/local/go /usr/local/go
ENV PATH=/usr/local/go/bin:$PATH
WORKDIR /src
# go.mod replaces github.com/ollama/ollama by build/ollama-src, our patched
# copy of it (make llama-src: the Makefile and the patches are all it needs),
# so the module download layer makes that folder first.
COPY go.mod go.sum Makefile ./
COPY engine/llamacpp/patches engine/llamacpp/patches
RUN make llama-src && go mod download
COPY . .
RUN make deps build cpu && make cuda CUDA_ARCH=${CUDA_ARCH}

FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu24.04
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /app qwen3
# The binary finds the CPU and CUDA backends in ../lib/ollama relative to itself.
COPY --from=build /src/bin/qwen3-server /app/bin/qwen3-server
COPY --from=build /src/lib/ollama/ /app/lib/ollama/
COPY configs/qwen3-server.yaml /app/configs/qwen3-server.yaml
USER qwen3
WORKDIR /app
VOLUME ["/models"]
EXPOSE 8080
ENV QWEN3_SERVER_ADDR=0.0.0.0:8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["/app/bin/qwen3-server"]
CMD ["serve", "--config", "/app/configs/qwen3-server.yaml", "--model", "/models/model.gguf"]
