# The two commands of the README. Each bootstraps what it needs (venv, pip, Java, apt packages).
.PHONY: demo test test-fast test-ha lint bootstrap bootstrap-test bench clean

demo: bootstrap
	.venv/bin/vendlab demo

# on two processes (pytest-xdist): the files with services tests in one group, one after the other and first,
# every other file a group of its own on the other process (tests/conftest.py); the 15 slowest at the end
# (every test but the `ha` tier's, below)
test: bootstrap-test
	.venv/bin/python -m pytest -q -n 2 --dist loadgroup --no-loadscope-reorder --durations=15 -m "not ha"

# the scaled-out stacks' longest runs on real services (marker `ha`: the 3-node lambda stack through a broker's
# and a Cassandra node's loss, about 17 minutes alone on 2 cores), kept out of `make test` for its time
test-ha: bootstrap-test
	.venv/bin/python -m pytest -q -m ha --durations=5

# the tests that need neither Spark nor a browser nor a service and take under about a second each (markers in
# pyproject.toml; tests/conftest.py), on two processes (pytest-xdist; a test file stays in one process, so its
# module fixtures are made once)
test-fast: bootstrap
	.venv/bin/python -m pytest -q -n 2 --dist loadfile -m "not spark and not browser and not services and not slow"

# ruff (pinned in requirements.txt, configured in pyproject.toml): the lint rules, then the formatting
lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

bench: bootstrap
	.venv/bin/vendlab bench --out bench-out

bootstrap:
	@scripts/bootstrap.sh

bootstrap-test:
	@scripts/bootstrap.sh --test

clean:
	rm -rf data bench-out .pytest_cache
