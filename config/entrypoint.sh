#!/bin/sh
# The image's entrypoint, equivalent to the Go image's: the provider comes from $1 or
# CLOUD_PROVIDER, the settings a provider cannot run without are checked with a clear message,
# and everything else reaches the daemon as environment (each flag reads its env var).
# Unlike the Go image's, an unknown or empty provider exits 1 (the pod shows the error instead
# of Completed). CAA_BIN overrides the binary (tests).
set -u
bin="${CAA_BIN:-/usr/local/bin/cloud-api-adaptor}"
provider="${1:-${CLOUD_PROVIDER:-}}"
[ $# -gt 0 ] && shift

require() {
    missing=0
    for name in "$@"; do
        eval "value=\${$name:-}"
        if [ -z "$value" ]; then
            echo "$name is NOT set"
            missing=1
        fi
    done
    [ "$missing" = 0 ] || exit 1
}

case "$provider" in
azure)
    # No secret check: workload identity and managed identity need none.
    require AZURE_CLIENT_ID AZURE_TENANT_ID AZURE_SUBSCRIPTION_ID AZURE_RESOURCE_GROUP AZURE_SUBNET_ID AZURE_IMAGE_ID
    exec "$bin" azure "$@"
    ;;
libvirt)
    require LIBVIRT_URI
    exec "$bin" libvirt -data-dir /opt/data-dir "$@"
    ;;
*)
    echo "entrypoint: unknown cloud provider '${provider}': set CLOUD_PROVIDER in peer-pods-cm to azure or libvirt" >&2
    "$bin" help >&2
    exit 1
    ;;
esac
