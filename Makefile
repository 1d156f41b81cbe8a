# dragoman: the two commands of the README are `make run` and `make test`.
# Everything they need is installed here: Python packages into .venv, Debian packages with apt.

PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
# The wheel tests build: optimised enough to test, quick to compile. Benchmarks use release.
TEST_PROFILE ?= quick
# CPython versions the test matrix covers besides 3.11 (those pyenv has are used): the oldest
# and the newest supported, so make test fits its 25 minutes on 2 cores; `make test-matrix
# MATRIX="3.10 3.12 3.13"` runs them all.
MATRIX      ?= 3.10 3.13
PYENV_ROOT  ?= $(HOME)/.pyenv
DEBIAN_PACKAGES := curl procps systemd chromium nginx strace nghttp2-client pebble haproxy iproute2
# libpython for `cargo test` (PyO3 links it into test binaries).
PY_LIBDIR   := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
export PYO3_PYTHON := $(shell command -v $(PYTHON))

.PHONY: run test lint unit e2e test-matrix system-deps wheel release-wheel example bench fuzz soak fleet clean

## make run: build dragoman (release), prepare the example Django site, serve it on :8000.
run: $(VENV)/.deps release-wheel example
	cd examples/mysite && exec ../../$(VENV)/bin/dragoman --ini dragoman.ini

## make test: lint, Rust unit tests, the end-to-end suite, then the same suite on 3.10-3.13.
test: system-deps lint unit e2e test-matrix

system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.deps: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r tests/requirements.txt
	touch $@

# tools/import_cycles.py: no import cycle between top-level modules, nor between the files of one
# module (issue 22).
lint: $(VENV)/.deps
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	$(PY) tools/import_cycles.py
	RUSTDOCFLAGS="-D warnings" cargo doc --document-private-items --no-deps --quiet
	$(VENV)/bin/ruff check tests examples python bench fuzz soak pgo tools
	$(VENV)/bin/ruff format --check tests python bench fuzz soak pgo tools

unit:
	LD_LIBRARY_PATH=$(PY_LIBDIR) cargo test --lib -q

# Builds the wheel with cargo profile $(1) for virtualenv $(2) and installs it there.
define build_wheel
	rm -rf target/wheels/$(2)
	$(VENV)/bin/maturin build -q --profile $(1) -i $(2)/bin/python -o target/wheels/$(2)
	$(2)/bin/python -m pip install -q --force-reinstall --no-deps target/wheels/$(2)/dragoman-*.whl
endef

# VENV_WHEEL: the virtualenv to build and install the test wheel for (the matrix sets it).
VENV_WHEEL ?= $(VENV)
wheel: $(VENV)/.deps
	$(call build_wheel,$(TEST_PROFILE),$(VENV_WHEEL))

# The release wheel is built with profile-guided optimisation (pgo/build.py: an instrumented
# build serves pgo/train.py's traffic, and the release build uses its counts). PGO=off: plain;
# auto: plain, with a warning, when the toolchain's llvm-profdata cannot be had.
PGO ?= auto
release-wheel: $(VENV)/.deps
	$(PY) pgo/build.py $(VENV) --pgo $(PGO)

# Test files run in parallel (each file in one process: they mostly wait on servers).
PYTEST := -m pytest tests/e2e -q -n 3 --dist loadfile
# On the other CPython versions, the files whose behaviour depends on the interpreter: the
# bridges (WSGI, ASGI, the validator), loading applications, Django and Python's logging. The
# rest is Rust's and runs once, on 3.11 (the whole suite four times would not fit make test's
# 25 minutes on 2 cores).
MATRIX_TESTS := test_wsgi.py test_validator.py test_app_loading.py test_asgi.py test_asgi_django.py \
	test_django.py test_access_log.py
PYTEST_MATRIX := -m pytest $(addprefix tests/e2e/,$(MATRIX_TESTS)) -q -n 3 --dist loadfile

e2e: wheel
	$(PY) $(PYTEST)

## The e2e suite on every other CPython that pyenv has: a wheel per version, proven.
test-matrix: $(VENV)/.deps
	@set -e; ran=0; for v in $(MATRIX); do \
		py=$$(ls -d $(PYENV_ROOT)/versions/$$v.*/bin/python3 2>/dev/null | sort -V | tail -1); \
		if [ -z "$$py" ]; then echo "test-matrix: CPython $$v not found under $(PYENV_ROOT); skipping it"; continue; fi; \
		env=.venv-$$v; \
		[ -x $$env/bin/python ] || $$py -m venv $$env; \
		$$env/bin/python -m pip install -q --upgrade pip; \
		$$env/bin/python -m pip install -q -r tests/requirements.txt; \
		$(MAKE) --no-print-directory wheel VENV_WHEEL=$$env; \
		echo "== e2e on $$($$env/bin/python --version)"; \
		$$env/bin/python $(PYTEST_MATRIX); \
		ran=$$((ran+1)); \
	done; echo "test-matrix: ran on $$ran other CPython version(s)"

## make bench: dragoman (release build, profile-guided) against its peers, side by side; writes bench/results.md.
## Peers: Granian, bjoern, gunicorn, uWSGI (pip, into .venv-bench), nginx, wrk and h2load (apt), and
## bench/hyper-hello (cargo); libev-dev lets pip build bjoern, valgrind counts instructions.
BENCH_VENV := .venv-bench
BENCH_PACKAGES := wrk nginx nghttp2-client libev-dev valgrind openssl
bench: system-deps $(VENV)/.deps
	@missing=""; for p in $(BENCH_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi
	[ -x $(BENCH_VENV)/bin/python ] || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q -r bench/requirements.txt
	$(PY) pgo/build.py $(BENCH_VENV) --pgo on
	cargo build --release --quiet --manifest-path bench/hyper-hello/Cargo.toml
	$(BENCH_VENV)/bin/python bench/run.py

## make fuzz: every fuzz target under libFuzzer for FUZZ_SECONDS each; writes fuzz/results.md.
FUZZ_SECONDS ?= 300
fuzz:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	$(PYTHON) fuzz/run.py --seconds $(FUZZ_SECONDS)

## make soak: the example site under mixed traffic and faults; writes soak/results.md.
SOAK_SECONDS ?= 600
soak: $(VENV)/.deps release-wheel example
	$(PY) soak/run.py --seconds $(SOAK_SECONDS)

## make fleet: three hosts serving the example site behind HAProxy, each in a network namespace
## of its own (root; ip netns), under load: rolling reload and restart, a killed master, a
## crashed host; writes tests/fleet/results.md (docs/fleet.md). About a minute and a half.
fleet: system-deps wheel
	@[ "$$(id -u)" = 0 ] || { echo "make fleet: needs root (it makes network namespaces)"; exit 1; }
	$(PY) -m pytest tests/fleet -q -p no:cacheprovider

## Prepares the example site: database, static files, the demo admin user.
example: $(VENV)/.deps
	cd examples/mysite && ../../$(PY) manage.py migrate --noinput -v 0
	cd examples/mysite && ../../$(PY) manage.py collectstatic --noinput -v 0
	cd examples/mysite && ../../$(VENV)/bin/dragoman compress --quiet staticfiles
	cd examples/mysite && ../../$(PY) manage.py ensure_demo_user

clean:
	cargo clean
	rm -rf $(VENV) .venv-3.* .venv-bench dist
