# The node daemon's image: built on Debian bookworm, run on bookworm-slim with only the
# shared libraries the binary links (tests/deploy/check.py compares this list with ldd).
#   docker build -t cloud-api-adaptor-c .
# The daemon runs as root in the container: it needs CAP_NET_ADMIN and CAP_SYS_ADMIN in the
# host's network namespace, and CAP_SYS_NICE for -loop-nice (config/base/daemonset.yaml says
# why); nothing else is granted.
FROM debian:bookworm AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        build-essential pkg-config git ca-certificates libuv1-dev libprotobuf-c-dev protobuf-c-compiler \
        libjansson-dev libssl-dev zlib1g-dev libvirt-dev libisofs-dev libxml2-dev libmnl-dev libnftables-dev \
        libcurl4-openssl-dev libcmocka-dev clang \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make build/cloud-api-adaptor

FROM debian:bookworm-slim
# runtime-packages (kept in step with the binary's libraries by tests/deploy/check.py):
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        ca-certificates libuv1 libprotobuf-c1 libjansson4 libssl3 zlib1g libvirt0 libisofs6 libxml2 libmnl0 \
        libnftables1 libcurl4 openssh-client \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/cloud-api-adaptor /usr/local/bin/cloud-api-adaptor
COPY config/entrypoint.sh /usr/local/bin/entrypoint.sh
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
