#!/usr/bin/env bash
# The libvirt provider's XML and ISO checked by independent tools:
# - every domain and volume golden of tests/data/libvirt through virt-xml-validate (libvirt's
#   RNG schemas), and every domain golden defined on libvirt's test driver by virsh;
# - the cidata ISO read back by xorriso (file list and bytes, with and without Rock Ridge
#   and Joliet) and blkid (the label cloud-init looks for).
# Usage: tests/libvirt/run.sh   (CIDATA_TOOL=build/test/cidata-tool)
# Ends with "libvirt: N passed, N failed".
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
tool="${CIDATA_TOOL:-build/test/cidata-tool}"
work="$(mktemp -d /tmp/caa-libvirt.XXXXXX)"
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
ko() { failed=$((failed + 1)); echo "FAIL - $1"; [[ -n "${2:-}" ]] && sed 's/^/       /' "$2" | tail -15; return 0; }
check() {
    local label=$1; shift
    if "$@" >"$work/last.log" 2>&1; then ok "$label"; else ko "$label" "$work/last.log"; fi
}

# --- XML ---------------------------------------------------------------------------------
for f in tests/data/libvirt/*.xml; do
    b=$(basename "$f")
    case "$b" in
    volume-*) check "virt-xml-validate $b" virt-xml-validate "$f" storagevol ;;
    *sev-snp* | *tdx*)
        # Debian 12's libvirt 9.0 schema predates sev-snp (libvirt 10.5) and tdx (11.0): the
        # rest of the domain must validate, and launchSecurity must be the only objection.
        sed '/<launchSecurity/,/<\/launchSecurity>/d' "$f" >"$work/$b"
        check "virt-xml-validate $b (launchSecurity needs libvirt >= 10.5; rest validated)" \
            virt-xml-validate "$work/$b" domain
        if virt-xml-validate "$f" domain >"$work/full.log" 2>&1; then
            ok "virt-xml-validate $b accepts launchSecurity (newer schema)"
        elif grep -q launchSecurity "$work/full.log" || grep -q 'Extra element launchSecurity\|Element domain has extra content: launchSecurity' "$work/full.log"; then
            ok "virt-xml-validate $b: only launchSecurity is unknown to this schema"
        else
            ko "virt-xml-validate $b refuses more than launchSecurity" "$work/full.log"
        fi
        ;;
    *)
        check "virt-xml-validate $b" virt-xml-validate "$f" domain
        check "virsh define $b on the test driver" virsh -q -c test:///default define "$f"
        ;;
    esac
done

# --- ISO ---------------------------------------------------------------------------------
name=podvm-nginx-7a0d0584
printf '#cloud-config\n\nwrite_files:\n  - path: /run/peerpod/apf.json\n    content: |\n      {}\n' >"$work/small"
: >"$work/empty"
python3 -c 'import sys; sys.stdout.write("".join("line %05d of a user-data that spans sectors\n" % i for i in range(400)))' >"$work/big"
head -c 5000 /dev/urandom | base64 -w0 >"$work/oneline"
for case in small empty big oneline; do
    iso="$work/$case.iso"
    if ! "$tool" "$name" "$work/$case" "$iso" >"$work/last.log" 2>&1; then ko "cidata ISO ($case) built" "$work/last.log"; continue; fi
    check "cidata ISO ($case) has label cidata (blkid)" bash -c "[[ \$(blkid -o value -s LABEL '$iso') == cidata ]]"
    for mode in "-rockridge on -joliet on" "-rockridge off -joliet off" "-rockridge off -joliet on"; do
        # shellcheck disable=SC2086
        xorriso -abort_on FAILURE $mode -indev "$iso" -lsl / >"$work/ls.log" 2>&1
        names=$(grep '^-' "$work/ls.log" | sed -n "s/.* '\(.*\)'$/\1/p" | sort | tr '\n' ' ')
        check "cidata ISO ($case, $mode) holds exactly meta-data user-data vendor-data" \
            test "$names" = "meta-data user-data vendor-data "
    done
    rm -rf "$work/x"; mkdir -p "$work/x"
    xorriso -osirrox on -indev "$iso" -extract / "$work/x" >"$work/ex.log" 2>&1
    check "cidata ISO ($case): user-data is byte-identical" cmp "$work/$case" "$work/x/user-data"
    check "cidata ISO ($case): meta-data is 'local-hostname: $name' without newline" \
        bash -c "[[ \"\$(od -An -c '$work/x/meta-data' | tr -d ' \n')\" == \"\$(printf 'local-hostname: $name' | od -An -c | tr -d ' \n')\" ]]"
    check "cidata ISO ($case): vendor-data is empty" test ! -s "$work/x/vendor-data" -a -f "$work/x/vendor-data"
done
echo "libvirt: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
