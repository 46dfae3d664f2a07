# hessian: build, test and benchmark.
#   make            library + CLI (bin/hessian)
#   make test       builds and runs every tests/test_*.c program and tests/test_cli*.sh at THREADS threads
#                   (default 2), then prints "N passed, M failed"
#   make BUILD=build_portable OPT='-O2 -march=x86-64-v2' test    a second build beside the native one
#   make bench      benchmarks against PyTorch (needs data and python3-torch; see bench/README.md)
#   make DEBUG=1    -O0 -g with AddressSanitizer and UndefinedBehaviorSanitizer
# No fast-math optimisation flags anywhere: this code computes derivatives and eigenvalues.

CC ?= cc
OPT ?= -O2 -march=native
ifeq ($(DEBUG),1)
OPT = -O0 -g -fsanitize=address,undefined -fno-omit-frame-pointer
endif
CFLAGS ?=
CFLAGS += -std=c11 -Wall -Wextra -Wshadow -Wno-unused-parameter -fopenmp $(OPT) -I/usr/include/openblas -MMD -MP
# OpenBLAS's OpenMP build runs single-threaded inside our OpenMP regions and uses the same thread pool
# outside them; prefer it over the pthread build when installed (scripts/setup.sh installs it).
OPENBLAS_OMP_DIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
ifneq ($(wildcard $(OPENBLAS_OMP_DIR)/libopenblas.so),)
LDLIBS += -L$(OPENBLAS_OMP_DIR) -Wl,--disable-new-dtags,-rpath,$(OPENBLAS_OMP_DIR)
endif
LDLIBS += -llapacke -lopenblas -lm -fopenmp
ifeq ($(DEBUG),1)
LDLIBS += -fsanitize=address,undefined
endif

BUILD ?= build
THREADS ?= 2
# The CLI lives in bin/ for the default build and in $(BUILD)/bin/ for any other build folder.
ifeq ($(BUILD),build)
HESSIAN := bin/hessian
else
HESSIAN := $(BUILD)/bin/hessian
endif
# Precision-generic sources: compiled twice (HS_F32 -> *_f32 symbols, HS_F64 -> *_f64 symbols).
GENERIC_DIRS := src/ops src/models src/optim src/curvature
# Precision-independent sources: compiled once.
PLAIN_DIRS := src/core src/io src/data src/spectral src/report src/graph

GENERIC_SRC := $(foreach d,$(GENERIC_DIRS),$(wildcard $(d)/*.c))
PLAIN_SRC := $(foreach d,$(PLAIN_DIRS),$(wildcard $(d)/*.c))
CLI_SRC := $(wildcard src/cli/*.c)
# Command implementations (precision-generic, linked into the CLI only).
CMD_SRC := $(wildcard src/commands/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
BENCH_SRC := $(wildcard bench/*.c)

OBJ := $(GENERIC_SRC:%.c=$(BUILD)/f32/%.o) $(GENERIC_SRC:%.c=$(BUILD)/f64/%.o) $(PLAIN_SRC:%.c=$(BUILD)/plain/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/plain/%.o) $(CMD_SRC:%.c=$(BUILD)/f32/%.o) $(CMD_SRC:%.c=$(BUILD)/f64/%.o)
LIB := $(BUILD)/libhessian.a
# Tests are built -DHS_F64; these are also built -DHS_F32 as $(BUILD)/tests/NAME_f32.
F32_TESTS := test_ops test_batchnorm test_golden
TESTS := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%) $(F32_TESTS:%=$(BUILD)/tests/%_f32)
BENCHES := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%_f32) $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%_f64)

.PHONY: all test bench clean FORCE
all: $(HESSIAN)

$(BUILD)/f32/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DHS_F32 -c $< -o $@
$(BUILD)/f64/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DHS_F64 -c $< -o $@
$(BUILD)/plain/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The git commit, recorded in --version and every result file: version.c is rebuilt when it changes.
GIT_COMMIT := $(shell c=$$(git rev-parse --short=12 HEAD 2>/dev/null) && { git diff --quiet HEAD -- src 2>/dev/null || c=$$c-dirty; echo $$c; } || echo unknown)
$(BUILD)/git_commit: FORCE
	@mkdir -p $(dir $@)
	@echo '$(GIT_COMMIT)' | cmp -s - $@ || echo '$(GIT_COMMIT)' > $@
$(BUILD)/plain/src/core/version.o: src/core/version.c $(BUILD)/git_commit
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DHS_GIT_COMMIT='"$(GIT_COMMIT)"' -c $< -o $@
FORCE:

$(LIB): $(OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(HESSIAN): $(CLI_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CLI_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c $(LIB) tests/check.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DHS_F64 $< $(LIB) $(LDLIBS) -o $@
$(BUILD)/tests/%_f32: tests/%.c $(LIB) tests/check.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DHS_F32 $< $(LIB) $(LDLIBS) -o $@

CLI_TESTS := $(sort $(wildcard tests/test_cli*.sh))
test: $(TESTS) $(HESSIAN)
	@OMP_NUM_THREADS=$(THREADS) OPENBLAS_NUM_THREADS=1 HESSIAN_BIN=$(HESSIAN) sh tests/run_all.sh $(TESTS) $(CLI_TESTS)

$(BUILD)/bench/%_f32: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DHS_F32 $< $(LIB) $(LDLIBS) -o $@
$(BUILD)/bench/%_f64: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DHS_F64 $< $(LIB) $(LDLIBS) -o $@

bench: $(HESSIAN) $(BENCHES)
	bash bench/run.sh

clean:
	rm -rf $(BUILD) bin build_portable

# Fuzzing: `make fuzz [FUZZ_SECONDS=60]` runs tests/fuzz/run.sh, which installs clang and the libFuzzer runtime
# when missing (as root), builds every tests/fuzz/fuzz_*.c harness (target fuzz-build) and runs each for
# FUZZ_SECONDS; see tests/fuzz/README.md. The harnesses link the parsers' sources, built with clang, libFuzzer,
# AddressSanitizer and UndefinedBehaviorSanitizer into $(BUILD)/fuzz/.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_CFLAGS := -std=c11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all -Wall -Wextra -Wshadow -Wno-unused-parameter -Wno-unknown-pragmas -MMD -MP
FUZZ_LIB_SRC := src/core/common.c src/core/rng.c src/io/atomic_file.c src/io/npy.c src/io/safetensors.c \
	src/data/cifar10.c src/data/samples.c src/cli/args.c
FUZZ_LIB_OBJ := $(FUZZ_LIB_SRC:%.c=$(BUILD)/fuzz/obj/%.o)
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
.PHONY: fuzz fuzz-build
.SECONDARY: $(FUZZ_LIB_OBJ)
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_CC=$(FUZZ_CC) BUILD=$(BUILD) bash tests/fuzz/run.sh
fuzz-build: $(FUZZ_BIN)
$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $< $(FUZZ_LIB_OBJ) -lpthread -lm -o $@
-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_BIN:=.d)

-include $(OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TESTS:=.d) $(BENCHES:=.d)
