# Entry points, each creating or reusing .venv: `make demo`, `make test`, `make e2e`.
# Installs are pinned by constraints.txt so that a new upstream release cannot change CI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kfg-installed
CONSTRAINTS ?= constraints.txt

.PHONY: demo test e2e lint bench lock golden clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@echo "make: creating $(VENV) and installing kfg with its pinned dependencies (a minute or two the first time)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip==26.3'
	$(BIN)/python -m pip install --progress-bar off -c $(CONSTRAINTS) -e '.[dev]' | grep -E '^(Collecting|Successfully)' || true
	$(BIN)/kfg --version
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kfg validate examples
	$(BIN)/kfg cells examples/wine/wine.ipynb
	$(BIN)/kfg graph examples/wine/kale.yaml
	$(BIN)/kfg render examples -o deploy
	$(BIN)/kubectl kustomize deploy > /dev/null && echo "kubectl kustomize deploy: ok"
	$(BIN)/kfg run examples/wine/kale.yaml
	$(BIN)/kfg run examples/wine/kale.yaml -p n_estimators=50
	$(BIN)/kfg tune examples/digits/kale.yaml --trials 4

lint: $(STAMP)
	$(BIN)/ruff check kfg tests benchmarks
	$(BIN)/ruff format --check kfg tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# The unit and integration suite, on both cores (a test module stays on one worker, so its
# module fixtures are built once); the end-to-end tier (real tools, whole runs) is `make e2e`.
test: lint
	$(BIN)/pytest -q -n 2 --dist loadfile --ignore=tests/e2e

# The end-to-end tier; its Go tools (kube-apiserver, etcd, Katib's webhooks, Flux's apply)
# are built once per machine into ~/.cache/kfg-e2e (needs Go; see README).
e2e: $(STAMP)
	$(BIN)/python tests/e2e/tools/build.py
	$(BIN)/pytest -q tests/e2e

# Every golden file: the examples' rendered output (examples/deploy, which the render tests
# compare with) and the KRM function's expected output. Review the diff before committing.
golden: $(STAMP)
	$(BIN)/kfg render examples -o examples/deploy
	KFG_UPDATE_GOLDEN=1 $(BIN)/pytest -q tests/gitops/test_krm.py tests/render/test_schedules.py -k golden

bench: $(STAMP)
	$(BIN)/python benchmarks/pipeline_size.py
	$(BIN)/python benchmarks/validate_speed.py
	$(BIN)/python benchmarks/render_speed.py --serial
	$(BIN)/python benchmarks/local_engine.py --skip-kfp
	$(BIN)/python benchmarks/data_passing.py

# Re-resolve every dependency to its newest allowed version and pin the result.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e '.[dev]' 'kfp-pipeline-spec==2.17.0'
	{ sed -n '1,3p' $(CONSTRAINTS); .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^kfg'; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS) && rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis deploy
