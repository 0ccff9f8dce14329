# cloud-api-adaptor in C. `make` builds build/cloud-api-adaptor; `make check` runs every test.
CC       ?= cc
CLANG    ?= clang
PKGS     := libuv libprotobuf-c jansson libcrypto libssl zlib libvirt libisofs-1 libxml-2.0 libmnl libnftables libcurl
VERSION  := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral
CFLAGS   ?= -O2 -g
CPPFLAGS += -D_GNU_SOURCE -Ibuild/gen -Iadaptor -Iproviders -Ivxlan
ALL_CFLAGS = -std=c11 $(WARN) $(CFLAGS) $(shell pkg-config --cflags $(PKGS))
LIBS      = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

PROTOS   := $(wildcard proto/*.proto)
GEN_C    := $(patsubst proto/%.proto,build/gen/%.pb-c.c,$(PROTOS))
GEN_H    := $(GEN_C:.c=.h)
# Everything but the entry point and the provider table: shared by the daemon, its test
# build and the unit tests.
CORE_SRC := $(filter-out adaptor/main.c,$(wildcard adaptor/*.c)) \
            $(filter-out providers/builtin.c,$(wildcard providers/*.c)) $(wildcard providers/libvirt/*.c) \
            $(wildcard providers/azure/*.c) $(wildcard vxlan/*.c) $(GEN_C)
FAKE_SRC := $(wildcard tests/fakeprov/*.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

obj = $(patsubst %.c,build/$(1)/%.o,$(2))
CORE_OBJ      := $(call obj,obj,$(CORE_SRC))
CORE_SAN_OBJ  := $(call obj,san,$(CORE_SRC))
UNIT_BIN      := $(patsubst tests/unit/%.c,build/test/unit/%,$(UNIT_SRC))
UNIT_VG_BIN   := $(patsubst tests/unit/%.c,build/test/unit-vg/%,$(UNIT_SRC))
FUZZ_BIN      := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))

FUZZ_SECONDS ?= 15

.PHONY: all deps print-deps check unit unit-valgrind e2e node fuzz fuzz-check bench run demo clean
.SECONDARY:

all: build/cloud-api-adaptor build/test/cloud-api-adaptor

# The Debian packages the build and the tests need.
DEB_PKGS := build-essential pkg-config libuv1-dev libprotobuf-c-dev protobuf-c-compiler libjansson-dev \
            libcmocka-dev clang libclang-rt-14-dev golang-go golang-github-containerd-ttrpc-dev \
            golang-google-grpc-dev golang-github-gogo-protobuf-dev iproute2 procps \
            libssl-dev zlib1g-dev openssl python3-yaml libvirt-dev libisofs-dev libxml2-dev libvirt-clients xorriso \
            libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils dnsmasq-base iptables socat \
            libmnl-dev libnftables-dev nftables conntrack iputils-ping libcurl4-openssl-dev \
            golang-github-vishvananda-netlink-dev golang-github-vishvananda-netns-dev valgrind \
            python3-prometheus-client
print-deps:
	@echo $(DEB_PKGS)

deps:
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_PKGS) && \
		{ command -v kubectl >/dev/null 2>&1 || \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubernetes-client; }; \
	else \
		echo "run as root, or: sudo apt-get install -y $(DEB_PKGS)"; \
	fi

build/gen/%.pb-c.c build/gen/%.pb-c.h: proto/%.proto
	@mkdir -p build/gen
	protoc-c --c_out=build/gen -Iproto $<

build/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -DCAA_VERSION='"$(VERSION)"' -DCAA_COMMIT='"$(COMMIT)"' -MMD -MP -c $< -o $@

build/san/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	@echo "  CC/SAN  $<"
	@$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(SAN) -MMD -MP -c $< -o $@

# Generated code is not ours to lint.
build/obj/build/gen/%.o build/san/build/gen/%.o: WARN := -Wall -Werror

build/cloud-api-adaptor: build/obj/adaptor/main.o build/obj/providers/builtin.o $(CORE_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

# The daemon with the fake cloud provider of tests/fakeprov, never shipped.
build/test/cloud-api-adaptor: build/obj/adaptor/main.o $(call obj,obj,$(FAKE_SRC)) $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

# The same under ASan+UBSan, for `make check` to run the end-to-end suite against.
build/test/san/cloud-api-adaptor: build/san/adaptor/main.o $(call obj,san,$(FAKE_SRC)) $(CORE_SAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LIBS)

# Small CLI over adaptor/tlsca for the openssl s_server/s_client tests in tests/tls.
build/test/wakeup: tests/bench/wakeup.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $<

build/test/tlsca-tool: tests/tls/tlsca-tool.c build/obj/adaptor/tlsca.o build/obj/adaptor/log.o
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $^ $(LIBS)

# Writes the cidata ISO for tests/libvirt/run.sh.
build/test/cidata-tool: tests/libvirt/cidata-tool.c build/san/providers/libvirt/cidata.o
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(SAN) -o $@ $^ $(LIBS)

# Prints what adaptor/toml reads, for the differential test against Python's tomllib.
build/test/toml-dump: tests/toml/toml-dump.c build/san/adaptor/toml.o
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(SAN) -o $@ $^ $(LIBS)

build/test/unit/%: tests/unit/%.c $(CORE_SAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(SAN) -o $@ $< $(CORE_SAN_OBJ) $(LIBS) -lcmocka

# The same tests without sanitizers, for valgrind (memcheck cannot run ASan binaries).
build/test/unit-vg/%: tests/unit/%.c $(CORE_OBJ)
	@mkdir -p $(dir $@)
	@$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(CORE_OBJ) $(LIBS) -lcmocka

# libFuzzer targets under ASan+UBSan; each links the pure modules it exercises.
build/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(CORE_SRC) $(GEN_H)
	@mkdir -p $(dir $@)
	$(CLANG) $(CPPFLAGS) -Itests/fuzz -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined $(shell pkg-config --cflags $(PKGS)) \
		-o $@ $< $(CORE_SRC) $(LIBS)

unit: $(UNIT_BIN)
	@tests/run-unit.sh $(UNIT_BIN)

unit-valgrind: $(UNIT_VG_BIN)
	@UNIT_RUNNER=valgrind tests/run-unit.sh $(UNIT_VG_BIN)

e2e: build/test/cloud-api-adaptor
	@tests/e2e/run-core.sh

# The simulated worker node's acceptance scenarios (tests/node/run.sh, root only).
node: build/test/cloud-api-adaptor
	@tests/node/run.sh

fuzz: $(FUZZ_BIN)
	@tests/run-fuzz.sh 300 $(FUZZ_BIN)

fuzz-check: $(FUZZ_BIN)
	@tests/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

check: all build/test/san/cloud-api-adaptor build/test/tlsca-tool build/test/toml-dump build/test/cidata-tool $(UNIT_BIN) $(UNIT_VG_BIN) $(FUZZ_BIN)
	@tests/run-check.sh "$(FUZZ_SECONDS)" "$(UNIT_BIN)" "$(FUZZ_BIN)" "$(UNIT_VG_BIN)"

bench: all
	@if ls tests/bench/*.sh >/dev/null 2>&1; then for b in tests/bench/*.sh; do bash $$b || exit 1; done; \
	else echo "no benchmarks yet"; fi

# Runs the daemon in the foreground with the libvirt provider on libvirt's test driver and
# the node of config/libvirt-test-node.xml: no hypervisor, no cloud, no root needed. Its
# socket is build/run/hypervisor.sock; ISOs go to build/run/libvirt.
run: all
	@mkdir -p build/run
	exec build/cloud-api-adaptor libvirt -uri test://$(CURDIR)/config/libvirt-test-node.xml \
		-socket $(CURDIR)/build/run/hypervisor.sock -pods-dir $(CURDIR)/build/run/pods \
		-data-dir $(CURDIR)/build/run/libvirt

# A simulated worker node: the daemon on the test-driver node, pod and pod VM namespaces, and
# a kata-shim stand-in running one pod through every step (tests/demo/run.sh). Needs root.
demo:
	@tests/demo/run.sh

# The Go end-to-end client (also the shim stand-in of make demo), built offline in GOPATH mode.
build/test/caa-e2e: $(wildcard tests/e2e/go/src/caa-e2e/*.go)
	@mkdir -p build/test build/gocache
	GO111MODULE=off GOFLAGS= GOPROXY=off GOPATH="$(CURDIR)/tests/e2e/go:/usr/share/gocode" \
		GOCACHE="$(CURDIR)/build/gocache" go build -o $@ caa-e2e

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
