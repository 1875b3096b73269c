# faro: build, test and package. `make test` is what CI runs (through .ci/run).
CARGO   ?= cargo
PREFIX  ?= /usr/local
DESTDIR ?=
# The musl target cannot be installed on our machines: a static binary is built for the gnu
# target with glibc linked in statically (see README, "Static binary").
STATIC_TARGET := x86_64-unknown-linux-gnu
STATIC_BIN    := target/$(STATIC_TARGET)/release/faro

.PHONY: build static test lint generate check bench demo install clean

build:
	$(CARGO) build --release --bin faro

static:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --bin faro --target $(STATIC_TARGET)
	@file $(STATIC_BIN) | grep -Eq "static(ally|-pie) linked" || { file $(STATIC_BIN); echo "error: $(STATIC_BIN) is not statically linked"; exit 1; }
	@if ldd $(STATIC_BIN) 2>&1 | grep -q "=>"; then ldd $(STATIC_BIN); echo "error: $(STATIC_BIN) has dynamic dependencies"; exit 1; fi
	bash .ci/static-smoke.sh $(STATIC_BIN)

test:
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	# The library alone (what `faro = { default-features = false }` builds: no clap, no anyhow).
	$(CARGO) clippy -p faro --lib --no-default-features -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps -p faro

generate:
	$(CARGO) run -q --bin faro -- generate all --out-dir .

check: lint test

bench:
	bash bench/run.sh

demo:
	bash examples/demo.sh

install: build
	install -Dm755 target/release/faro $(DESTDIR)$(PREFIX)/bin/faro
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	install -m644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -Dm644 completions/faro.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/faro
	install -Dm644 completions/_faro $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_faro
	install -Dm644 completions/faro.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/faro.fish

clean:
	$(CARGO) clean
