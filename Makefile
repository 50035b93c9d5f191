# Two entry points, each creating or reusing .venv: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kfg-installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kfg validate examples
	$(BIN)/kfg cells examples/wine/wine.ipynb
	$(BIN)/kfg graph examples/wine/kale.yaml
	$(BIN)/kfg render examples -o deploy
	$(BIN)/kubectl kustomize deploy > /dev/null && echo "kubectl kustomize deploy: ok"

lint: $(STAMP)
	$(BIN)/ruff check kfg tests benchmarks
	$(BIN)/ruff format --check kfg tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/validate_speed.py
	$(BIN)/python benchmarks/render_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis deploy
