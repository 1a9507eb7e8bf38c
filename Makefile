# The two commands of the README. Each bootstraps what it needs (venv, pip, Java, apt packages).
.PHONY: demo test bootstrap bootstrap-test bench clean

demo: bootstrap
	.venv/bin/vendlab demo

test: bootstrap-test
	.venv/bin/python -m pytest -q

bench: bootstrap
	.venv/bin/vendlab bench --out bench-out

bootstrap:
	@scripts/bootstrap.sh

bootstrap-test:
	@scripts/bootstrap.sh --test

clean:
	rm -rf data bench-out .pytest_cache
