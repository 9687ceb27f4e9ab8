# The two set-up commands of README.md are `make demo` and `make test`; both install first.
VENV ?= .venv
export MUJOCO_GL ?= egl

.PHONY: install demo test lint format bench clean
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh
	touch $@

demo: install
	$(VENV)/bin/embodia quickstart

# The openpi-client compatibility tests need their own venv (numpy<2); building it here makes the
# README's test command run exactly what CI runs (the script is idempotent).
test: install
	bash scripts/setup_openpi_client_venv.sh
	$(VENV)/bin/python -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests benchmarks scripts examples
	$(VENV)/bin/ruff format --check src tests benchmarks scripts examples

format: install
	$(VENV)/bin/ruff format src tests benchmarks scripts examples
	$(VENV)/bin/ruff check --fix src tests benchmarks scripts examples

bench: install
	$(VENV)/bin/python benchmarks/bench_engine.py

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
