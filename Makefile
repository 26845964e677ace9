# flashsale: the two commands a newcomer needs are `make run` and `make test`.
GO ?= go
# Go test flags for `make test`: race detector on, invariant checks on (the
# invariants build tag turns on the expensive checks in the engine).
TEST_FLAGS ?= -race -tags invariants -count=1 -timeout 20m

.PHONY: test run bench bench-compare fuzz soak services vet

# Everything: formatting, vet, the whole test suite with -race, short fuzz runs.
# Fuzz budgets are counts of inputs, not durations: with a duration, Go 1.26's
# fuzz coordinator can fail a run with "context deadline exceeded" at the
# deadline on a loaded machine (go.dev/issue/75804, fixed in Go 1.27).
# Brings up MariaDB and Redis first when none answers, and installs gcc when Go
# has no C compiler for -race (scripts/ensure-services.sh).
test: services vet
	$(GO) test $(TEST_FLAGS) ./...
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 50000x ./wal
	$(GO) test -run '^$$' -fuzz '^FuzzChunk$$' -fuzztime 50000x ./wal
	@if grep -qs 'func FuzzParse' server/*_test.go; then \
		$(GO) test -run '^$$' -fuzz '^FuzzParse' -fuzztime 50000x ./server; fi

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	$(GO) vet ./...

# MariaDB, Redis and a C compiler for -race (`make run` asks the script for
# MariaDB only).
services:
	@bash scripts/ensure-services.sh

# Start the server with a small demo catalog; MySQL sync to the local MariaDB
# (the server needs no Redis). The binary is built and exec'd rather than
# `go run`, which exits 1 on Ctrl-C and prints an error: this way Ctrl-C gives
# the server's own clean shutdown (exit 0). make, which gets the Ctrl-C too,
# still exits 130, as it does after any interrupt, but prints no error.
run:
	@bash scripts/ensure-services.sh mariadb
	$(GO) build -o flashsale ./cmd/flashsale
	exec ./flashsale serve --demo --data ./data \
		--mysql-dsn 'root@tcp(127.0.0.1:3306)/test?parseTime=true'

# Go micro-benchmarks (engine, wal, server).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3s ./engine ./wal ./server

# The side-by-side comparison of docs/benchmarks.md (needs MariaDB and Redis).
bench-compare: services
	$(GO) run ./cmd/flashsale bench --compare --json docs/bench-compare.json --png docs/bench-compare.png

# Longer fuzzing, beyond what `make test` runs.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 2000000x ./wal
	$(GO) test -run '^$$' -fuzz '^FuzzChunk$$' -fuzztime 2000000x ./wal

# Longer crash and randomized runs.
soak: services
	FLASHSALE_SOAK=1 $(GO) test $(TEST_FLAGS) -run 'Crash|Model' ./...
