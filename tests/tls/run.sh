#!/usr/bin/env bash
# The TLS material of adaptor/tlsca.c checked by an independent implementation: the openssl
# command-line tools verify the generated certificates and run real mutual-TLS handshakes
# over 127.0.0.1, the pod VM's forwarder played by `openssl s_server` (server cert issued for
# the VM, client certificate required and verified against tls-client-ca = client.crt).
#
# Usage (from anywhere):  tests/tls/run.sh
# Environment:
#   TLSCA_TOOL  helper binary (default build/test/tlsca-tool; built here with cc if missing)
#   OPENSSL     openssl command (default openssl)
# Ends with "tls: N passed, N failed"; exits non-zero if anything failed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
ossl="${OPENSSL:-openssl}"
tool="${TLSCA_TOOL:-build/test/tlsca-tool}"

work="$(mktemp -d /tmp/caa-tls.XXXXXX)"
srv_pid=""
cleanup() {
    if [[ -n "$srv_pid" ]]; then
        kill "$srv_pid" 2>/dev/null || true
        wait "$srv_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ ! -x "$tool" ]]; then
    tool="$work/tlsca-tool"
    # shellcheck disable=SC2046 # pkg-config prints several words on purpose
    timeout 120 cc -std=c11 -D_GNU_SOURCE -Iadaptor -Iproviders -Ibuild/gen -Wall -Wextra -Werror -O1 -g \
        -o "$tool" tests/tls/tlsca-tool.c adaptor/tlsca.c adaptor/log.c $(pkg-config --libs libssl libcrypto)
fi

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
ko() { failed=$((failed + 1)); echo "FAIL - $1"; [[ -n "${2:-}" ]] && sed 's/^/       /' "$2" | tail -15; return 0; }
# check NAME CMD...: the command must succeed (output kept in $work/last.log)
# (The label variable must not be called "name": bash locals are dynamically scoped and the
# checks below read the global $name.)
check() {
    local label=$1; shift
    if "$@" >"$work/last.log" 2>&1; then ok "$label"; else ko "$label" "$work/last.log"; fi
}
# refuse NAME CMD...: the command must fail
refuse() {
    local label=$1; shift
    if "$@" >"$work/last.log" 2>&1; then ko "$label (unexpectedly succeeded)" "$work/last.log"; else ok "$label"; fi
}

name="podvm-nginx-866fdb5bfb-b98nw-8a7b6c5d"
st="$work/state" out="$work/out" tls="$work/state/tls"
mkdir -p "$out"

# --- material -------------------------------------------------------------------------------------
check "generate CA and client certificate" timeout 30 "$tool" init "$st"
check "issue a server certificate for $name" timeout 30 "$tool" issue "$st" "$name" "$out"
modes_ok() {
    local f m
    for f in ca.key ca.crt client.key client.crt; do
        m=$(stat -c %a "$tls/$f") || return 1
        [[ "$m" == 600 ]] || { echo "$f has mode $m"; return 1; }
    done
    [[ "$(stat -c %a "$out/server.key")" == 600 ]]
}
check "state files are mode 0600" modes_ok
pkcs8() { local f; for f in "$tls/ca.key" "$tls/client.key" "$out/server.key"; do
    head -1 "$f" | grep -qx -- '-----BEGIN PRIVATE KEY-----' || { echo "$f is not PKCS#8"; return 1; }; done; }
check "keys are PKCS#8 PRIVATE KEY PEM" pkcs8

restart_keeps() {
    cp "$tls/ca.crt" "$work/ca.first" && cp "$tls/client.crt" "$work/client.first" &&
        timeout 30 "$tool" init "$st" && cmp "$tls/ca.crt" "$work/ca.first" &&
        cmp "$tls/client.crt" "$work/client.first"
}
check "a second start reloads the same CA and client certificate" restart_keeps

check "openssl verify: server cert chains to ca.crt" \
    timeout 10 "$ossl" verify -CAfile "$tls/ca.crt" "$out/server.crt"
check "openssl verify: purpose sslserver and hostname $name" \
    timeout 10 "$ossl" verify -CAfile "$tls/ca.crt" -purpose sslserver -verify_hostname "$name" "$out/server.crt"
refuse "openssl verify: another hostname is refused" \
    timeout 10 "$ossl" verify -CAfile "$tls/ca.crt" -verify_hostname other-vm "$out/server.crt"
check "openssl verify: client cert is its own root, purpose sslclient" \
    timeout 10 "$ossl" verify -CAfile "$tls/client.crt" -purpose sslclient "$tls/client.crt"
refuse "openssl verify: client cert is not a server cert" \
    timeout 10 "$ossl" verify -CAfile "$tls/client.crt" -purpose sslserver "$tls/client.crt"

x509_text() { timeout 10 "$ossl" x509 -in "$1" -noout -text -nameopt RFC2253; }
server_fields() {
    local t; t=$(x509_text "$out/server.crt") || return 1
    grep -q "DNS:$name\$" <<<"$t" && grep -q "Subject: CN=$name,O=agent-protocol-forwarder\$" <<<"$t" &&
        grep -q "Issuer: O=agent-protocol-forwarder\$" <<<"$t" && grep -q "CA:FALSE" <<<"$t" &&
        grep -q "TLS Web Server Authentication" <<<"$t" && grep -q "Digital Signature, Certificate Sign" <<<"$t" &&
        grep -q "NIST CURVE: P-256" <<<"$t" && grep -q "ecdsa-with-SHA256" <<<"$t"
}
check "openssl x509: server cert has SAN DNS:$name, CN, O, serverAuth, CA:FALSE" server_fields
ca_fields() {
    local t; t=$(x509_text "$tls/ca.crt") || return 1
    grep -q "Subject: O=agent-protocol-forwarder\$" <<<"$t" && grep -q "CA:TRUE" <<<"$t" &&
        grep -q "TLS Web Server Authentication" <<<"$t" && ! grep -q "Alternative Name" <<<"$t"
}
check "openssl x509: CA is O=agent-protocol-forwarder, CA:TRUE, serverAuth" ca_fields
client_fields() {
    local t; t=$(x509_text "$tls/client.crt") || return 1
    grep -q "Subject: O=cloud-api-adaptor\$" <<<"$t" && grep -q "Issuer: O=cloud-api-adaptor\$" <<<"$t" &&
        grep -q "CA:FALSE" <<<"$t" && grep -q "TLS Web Client Authentication" <<<"$t"
}
check "openssl x509: client is self-signed O=cloud-api-adaptor, clientAuth" client_fields
serial_bits() {
    local s; s=$(timeout 10 "$ossl" x509 -in "$1" -noout -serial | sed 's/^serial=//') || return 1
    [[ ${#s} -le 32 && -n "$s" ]]
}
check "serials are at most 128 bits" serial_bits "$out/server.crt"
validity() {
    local nb na now
    nb=$(date -d "$(timeout 10 "$ossl" x509 -in "$out/server.crt" -noout -startdate | cut -d= -f2)" +%s)
    na=$(date -d "$(timeout 10 "$ossl" x509 -in "$out/server.crt" -noout -enddate | cut -d= -f2)" +%s)
    now=$(date +%s)
    # Backdated 5 minutes; two years (730 or 731 days) later, a little slack for the test's own time.
    (( nb <= now - 290 && nb >= now - 400 )) && (( na - nb >= 730 * 86400 && na - nb <= 731 * 86400 + 400 ))
}
check "validity: now-5min .. +2 years" validity

# --- handshakes -------------------------------------------------------------------------------------
port=""
start_server() {
    local p
    for _ in 1 2 3 4 5 6 7 8; do
        p=$((20000 + RANDOM % 40000))
        "$ossl" s_server -accept "127.0.0.1:$p" -cert "$out/server.crt" -key "$out/server.key" \
            -Verify 1 -CAfile "$tls/client.crt" -verify_return_error -rev >"$work/server.log" 2>&1 &
        srv_pid=$!
        for _ in $(seq 1 50); do
            if grep -q '^ACCEPT' "$work/server.log" 2>/dev/null; then port=$p; return 0; fi
            kill -0 "$srv_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill "$srv_pid" 2>/dev/null || true
        wait "$srv_pid" 2>/dev/null || true
        srv_pid=""
    done
    return 1
}
if start_server; then ok "s_server listening on 127.0.0.1:$port"; else ko "s_server did not start" "$work/server.log"; fi

# talk ARGS...: one s_client session sending "hello"; succeeds only if "olleh" comes back,
# i.e. the handshake completed on both sides and the server accepted the client.
talk() {
    local reply
    reply=$(printf 'hello\nCLOSE\n' | timeout 15 "$ossl" s_client -connect "127.0.0.1:$port" -ign_eof -quiet \
        -verify_return_error "$@" 2>"$work/client.err") || { cat "$work/client.err"; return 1; }
    [[ "$reply" == *olleh* ]] || { echo "no echo; got: $reply"; cat "$work/client.err"; return 1; }
}
if [[ -z "$port" ]]; then
    ko "handshake checks skipped: no server"
else
    check "mutual TLS with client cert, CA and expected name $name" \
        talk -cert "$tls/client.crt" -key "$tls/client.key" -CAfile "$tls/ca.crt" \
        -servername "$name" -verify_hostname "$name"
    check "mutual TLS forced to TLS 1.2" \
        talk -tls1_2 -cert "$tls/client.crt" -key "$tls/client.key" -CAfile "$tls/ca.crt" -verify_hostname "$name"
    refuse "refused without a client certificate" \
        talk -CAfile "$tls/ca.crt" -verify_hostname "$name"
    refuse "refused without a client certificate (TLS 1.2)" \
        talk -tls1_2 -CAfile "$tls/ca.crt" -verify_hostname "$name"
    refuse "refused: client expects another VM name" \
        talk -cert "$tls/client.crt" -key "$tls/client.key" -CAfile "$tls/ca.crt" -verify_hostname other-vm

    # A second daemon (another state dir): its client is unknown to this VM, its CA does not vouch.
    st2="$work/state2"
    check "second state dir generates other material" timeout 30 "$tool" init "$st2"
    refuse "refused: client certificate of another daemon" \
        talk -cert "$st2/tls/client.crt" -key "$st2/tls/client.key" -CAfile "$tls/ca.crt" -verify_hostname "$name"
    refuse "refused: server not signed by the CA the client trusts" \
        talk -cert "$tls/client.crt" -key "$tls/client.key" -CAfile "$st2/tls/ca.crt" -verify_hostname "$name"

    # TLS_CIPHER_SUITES as the daemon maps them, negotiated with TLS 1.2.
    profile_cipher() {
        local line list
        line=$(timeout 10 "$tool" profile VersionTLS12 TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256) || return 1
        list=${line#*ciphers=}
        [[ "$list" == ECDHE-ECDSA-CHACHA20-POLY1305 ]] || { echo "mapped to $list"; return 1; }
        printf 'hello\nCLOSE\n' | timeout 15 "$ossl" s_client -connect "127.0.0.1:$port" -ign_eof -tls1_2 \
            -cipher "$list" -cert "$tls/client.crt" -key "$tls/client.key" -CAfile "$tls/ca.crt" \
            -verify_hostname "$name" -verify_return_error >"$work/cipher.out" 2>&1 || { cat "$work/cipher.out"; return 1; }
        grep -q "Cipher is ECDHE-ECDSA-CHACHA20-POLY1305" "$work/cipher.out" && grep -q olleh "$work/cipher.out"
    }
    check "TLS_CIPHER_SUITES mapped and negotiated" profile_cipher
fi

# --- profile and file-mode errors, as the operator sees them ----------------------------------------
err_says() { # err_says TEXT CMD...: the command fails and its stderr contains TEXT
    local want=$1; shift
    if "$@" >"$work/err.out" 2>&1; then echo "succeeded"; return 1; fi
    grep -qF -- "$want" "$work/err.out" || { cat "$work/err.out"; return 1; }
}
check "TLS 1.3 with cipher suites is an invalid TLS profile" \
    err_says "invalid TLS profile: " timeout 10 "$tool" profile VersionTLS13 TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
check "unknown suite is named" \
    err_says '"TLS_NOT_A_SUITE"' timeout 10 "$tool" profile "" TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_NOT_A_SUITE
check "VersionTLS11 is refused" err_says "invalid TLS profile: " timeout 10 "$tool" profile VersionTLS11 ""
check "missing CACERT_FILE is named" \
    err_says "CACERT_FILE (-ca-cert-file) \"$work/nope.crt\": cannot read" \
    timeout 10 "$tool" open "$work/st3" "$work/nope.crt" "" ""
no_key_in_error() {
    err_says "does not match" timeout 10 "$tool" open "$work/st3" "" "$tls/client.crt" "$tls/ca.key" || return 1
    ! grep -q "PRIVATE\|$(sed -n 2p "$tls/ca.key" | cut -c1-16)" "$work/err.out"
}
check "mismatched CERT_KEY is named, no key bytes in the message" no_key_in_error
ca_file_mode() {
    local line
    line=$(timeout 10 "$tool" open "$work/st3" "$tls/ca.crt" "$tls/client.crt" "$tls/client.key" 2>/dev/null) || return 1
    [[ "$line" == "mode=ca-file server-name=podvm-server issues-server-certs=no apf-client-ca=no" ]] ||
        { echo "$line"; return 1; }
}
check "CACERT_FILE mode: expected name podvm-server, no server certs" ca_file_mode

echo "tls: $passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
