# The task runner. Each target is a script in scripts/, so the logic stays in one readable place.
.PHONY: demo test build bootstrap size bench sim

## Build everything and serve the demo app; prints the URL.
demo:
	scripts/demo.sh

## Run the whole test suite (what CI runs).
test:
	scripts/test.sh

## Build the wasm module into pkg/ and print its size.
build:
	scripts/bootstrap.sh
	scripts/build.sh

## Install what the build and the tests need, if it is missing.
bootstrap:
	scripts/bootstrap.sh

## Print the size of each entry point of the built package and of everything it ships (raw, gzip, brotli);
## `make test` checks the brotli sizes against pkg/size-budget.json.
size:
	node scripts/size.mjs

## Run the benchmark suite (bench/run.mjs): builds the package and the release server, prints the table and
## writes bench/results/latest.json and latest.md. A few minutes; not part of `make test` (its smoke mode is).
bench:
	scripts/bootstrap.sh
	scripts/build.sh
	cargo build --release -p outbox-server
	node bench/run.mjs

## The long simulation run: SIM_SEEDS seeds (default 1,000) of SIM_OPS ops (default 1,000), every
## invariant checked after every step. A violation prints the one-line command that replays it.
sim:
	SIM_SEEDS=$${SIM_SEEDS:-1000} SIM_OPS=$${SIM_OPS:-1000} cargo run --release -p outbox-sim
