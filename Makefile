# Two entry points for a new user: `make nightly` (the main job) and `make test`. Both set everything up first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := locks/dev.txt
RAY_LOCK := locks/ray.txt
RAY_STAMP := $(VENV)/.installed-ray

# --- llama.cpp, built for an explicit CPU baseline -------------------------------------------------------------------
# Never -march=native: a native build carries the build machine's instructions (AVX-512, AMX tiles) and dies with
# SIGILL on a machine, or a VM, that lacks or traps them. The variant is named, its flags are spelled out, and the wheel
# is kept in a folder keyed by version + flags, so a wheel built with other flags is never reused by accident.
LLAMA_LOCK := locks/llama-cpp-python.txt
LLAMA_VERSION := $(shell sed -n 's/^llama-cpp-python\[server\]==\([^ ]*\).*/\1/p' $(LLAMA_LOCK))
ARCH := $(shell uname -m)
# x86-64-v3 (AVX2, FMA, F16C, BMI2: every x86-64 CPU since about 2015) when this CPU has it, else the plain x86-64
# baseline (SSE4.2). Override with `make rebuild-llama LLAMA_CPU=x86-64`.
LLAMA_CPU ?= $(shell if [ "$(ARCH)" = x86_64 ]; then \
	if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && grep -qw f16c /proc/cpuinfo \
	   && grep -qw bmi2 /proc/cpuinfo; then echo x86-64-v3; else echo x86-64; fi; else echo generic; fi)
# Text generation only: the multimodal (llava/mtmd) library is loaded lazily by llama-cpp-python and never used here.
LLAMA_COMMON := -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF
LLAMA_OFF_X86_EXTRAS := -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF \
	-DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
LLAMA_FLAGS_x86-64-v3 := $(LLAMA_COMMON) -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON $(LLAMA_OFF_X86_EXTRAS)
LLAMA_FLAGS_x86-64 := $(LLAMA_COMMON) -DGGML_SSE42=ON -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF \
	-DGGML_BMI2=OFF $(LLAMA_OFF_X86_EXTRAS)
LLAMA_FLAGS_generic := $(LLAMA_COMMON)
LLAMA_CMAKE_ARGS := $(LLAMA_FLAGS_$(LLAMA_CPU))
LLAMA_FLAGS_KEY := $(shell printf '%s' '$(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-12)
LLAMA_WHEELHOUSE ?= $(HOME)/.cache/rag-fleet-harness/wheels
LLAMA_WHEEL_DIR := $(LLAMA_WHEELHOUSE)/llama-cpp-python-$(LLAMA_VERSION)-$(LLAMA_CPU)-$(LLAMA_FLAGS_KEY)

.PHONY: browser setup setup-ray nightly test test-fast lint typecheck bench clean-state lock lock-check llama-wheel rebuild-llama

$(STAMP): pyproject.toml $(LOCK) $(LLAMA_LOCK)
	@test -n "$(LLAMA_CMAKE_ARGS)" || { echo "unknown LLAMA_CPU '$(LLAMA_CPU)': use x86-64-v3, x86-64 or generic"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade 'pip>=24,<27'
	# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet -r locks/torch.txt
	# Exactly the tested versions, each checked against its hash.
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(MAKE) --no-print-directory llama-wheel
	$(BIN)/pip install --quiet --no-deps --force-reinstall $(LLAMA_WHEEL_DIR)/llama_cpp_python-*.whl
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	@printf '%s\n' "variant=$(LLAMA_CPU)" "cmake_args=$(LLAMA_CMAKE_ARGS)" "wheel_dir=$(LLAMA_WHEEL_DIR)" \
		> $(VENV)/llama-build.txt
	touch $(STAMP)

setup: $(STAMP)

# The optional Ray extra (`--ray`), exactly as locked: every file checked against its hash. Its pins shared with the
# main lock are the same versions (it is compiled with locks/dev.txt as a constraint), so nothing installed moves.
$(RAY_STAMP): $(STAMP) $(RAY_LOCK)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(RAY_LOCK)
	$(BIN)/pip check
	touch $(RAY_STAMP)

setup-ray: $(RAY_STAMP)

# Build the llama.cpp wheel once per version and flag set; the sdist is checked against its locked hash.
llama-wheel:
	@if ls $(LLAMA_WHEEL_DIR)/llama_cpp_python-*.whl >/dev/null 2>&1; then \
		echo "llama-cpp-python $(LLAMA_VERSION) ($(LLAMA_CPU)) from $(LLAMA_WHEEL_DIR)"; \
	else \
		echo "building llama-cpp-python $(LLAMA_VERSION) for $(LLAMA_CPU) (about 7 minutes, once): $(LLAMA_CMAKE_ARGS)"; \
		mkdir -p $(LLAMA_WHEEL_DIR).tmp && \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip wheel --quiet --no-cache-dir --no-deps --require-hashes \
			--no-binary llama-cpp-python -r $(LLAMA_LOCK) -w $(LLAMA_WHEEL_DIR).tmp && \
		printf '%s\n' "$(LLAMA_CMAKE_ARGS)" > $(LLAMA_WHEEL_DIR).tmp/cmake-args.txt && \
		rm -rf $(LLAMA_WHEEL_DIR) && mv $(LLAMA_WHEEL_DIR).tmp $(LLAMA_WHEEL_DIR); \
	fi

# After a server died with SIGILL, or to build for another CPU: `make rebuild-llama [LLAMA_CPU=x86-64]`.
rebuild-llama:
	rm -rf $(LLAMA_WHEEL_DIR) $(LLAMA_WHEEL_DIR).tmp
	$(MAKE) --no-print-directory llama-wheel LLAMA_CPU=$(LLAMA_CPU)
	$(BIN)/pip install --quiet --no-deps --force-reinstall $(LLAMA_WHEEL_DIR)/llama_cpp_python-*.whl
	@printf '%s\n' "variant=$(LLAMA_CPU)" "cmake_args=$(LLAMA_CMAKE_ARGS)" "wheel_dir=$(LLAMA_WHEEL_DIR)" \
		> $(VENV)/llama-build.txt

nightly: $(STAMP)
	$(BIN)/harness nightly

# Headless Chromium renders report.html in a test. Installed from Debian when it is missing and this user may.
browser:
	@command -v chromium >/dev/null 2>&1 || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium (Debian) for the report's browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: chromium is not installed; the browser test of report.html is skipped outside CI"; fi; }

test: $(STAMP) $(RAY_STAMP) browser
	$(BIN)/ruff check harness tests bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy harness
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not llama and not chroma_server and not ray"

lint: $(STAMP)
	$(BIN)/ruff check harness tests bench
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy harness

bench: $(STAMP)
	$(BIN)/python bench/metrics.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/dispatch.py
	$(BIN)/python bench/local_fleet.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/view.py

# Refresh the lock from pyproject.toml's ranges (newest compatible versions), with hashes, for Linux x86-64 and the
# CPU build of torch. Review the diff, run `make test`, commit. `make lock-check` shows what a refresh would change
# (run it monthly, and before a release).
LOCK_TOOLS := .venv-lock
TORCH_CPU_WHEELS ?= $(shell test -d /opt/wheels && echo /opt/wheels || echo https://download.pytorch.org/whl/cpu/torch/)
LOCK_COMPILE = $(LOCK_TOOLS)/bin/uv pip compile pyproject.toml --quiet --upgrade --extra local --extra dev \
	--generate-hashes --no-emit-package llama-cpp-python --no-emit-package torch --find-links $(TORCH_CPU_WHEELS) \
	--constraint locks/torch.txt --python-version 3.11 --python-platform x86_64-manylinux_2_28
$(LOCK_TOOLS)/bin/uv:
	$(PYTHON) -m venv $(LOCK_TOOLS)
	$(LOCK_TOOLS)/bin/pip install --quiet 'uv>=0.13,<0.14'
# The Ray extra's lock, compiled against the main lock so the versions they share cannot differ.
RAY_LOCK_COMPILE = $(LOCK_TOOLS)/bin/uv pip compile locks/ray.in --quiet --upgrade --generate-hashes \
	--constraint $(LOCK) --constraint locks/torch.txt --python-version 3.11 --python-platform x86_64-manylinux_2_28
lock: $(LOCK_TOOLS)/bin/uv
	$(LOCK_COMPILE) --output-file $(LOCK)
	$(RAY_LOCK_COMPILE) --output-file $(RAY_LOCK)
lock-check: $(LOCK_TOOLS)/bin/uv
	$(LOCK_COMPILE) --output-file $(LOCK).new
	diff -u $(LOCK) $(LOCK).new && echo "the lock is current"; rm -f $(LOCK).new
	$(RAY_LOCK_COMPILE) --output-file $(RAY_LOCK).new
	diff -u $(RAY_LOCK) $(RAY_LOCK).new && echo "the Ray lock is current"; rm -f $(RAY_LOCK).new

clean-state:
	$(BIN)/harness fleet down || true
	rm -rf .harness
