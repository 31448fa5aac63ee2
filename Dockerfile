# syntax=docker/dockerfile:1
# dynsecret image: the CLI and the in-cluster controller (`dynsecret controller`), run as 65532:65532.
#
#   docker build -t ghcr.io/dynsecret/dynsecret:0.1.0 .
#
# Both stages are Debian 12 (bookworm): the binary links the system libcurl and OpenSSL 3 dynamically, so it must
# run against the same ABI it was built with. The Swift runtime and Foundation are linked statically
# (--static-swift-stdlib), so the runtime stage needs no Swift toolchain. For reproducible builds pin both base
# images by digest (FROM swift:6.2-bookworm@sha256:...).
ARG SWIFT_IMAGE=swift:6.2-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${SWIFT_IMAGE} AS build
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update -q \
 && apt-get install -y -q --no-install-recommends libssl-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, in their own layer: source edits do not re-fetch them. Package.resolved is copied when present.
COPY Package.* ./
RUN swift package resolve
# Every target directory the manifest declares must exist for the package to load, test targets included.
COPY Sources ./Sources
COPY Tests ./Tests
COPY Benchmarks ./Benchmarks
RUN swift build -c release --static-swift-stdlib --product dynsecret \
 && install -D -m 0755 "$(swift build -c release --show-bin-path)/dynsecret" /out/dynsecret

FROM ${RUNTIME_IMAGE}
# Only what the binary loads: libcurl (HTTP/2 client to the API server), OpenSSL 3 (crypto, TLS), and the CA
# bundle for servers outside the cluster (in-cluster the service account's CA is used). The binary's other needs,
# libc, libstdc++ and libgcc_s, are already in the slim image (apt itself depends on them).
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update -q \
 && apt-get install -y -q --no-install-recommends libcurl4 libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nonroot \
 && install -d -m 0700 -o 65532 -g 65532 /var/lib/dynsecret
COPY --from=build /out/dynsecret /usr/local/bin/dynsecret
# Fails the build if a shared library the binary needs is missing from this stage.
RUN ["/usr/local/bin/dynsecret", "version"]
# Numeric, so that the kubelet can verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532
WORKDIR /var/lib/dynsecret
ENTRYPOINT ["/usr/local/bin/dynsecret"]
CMD ["--help"]
