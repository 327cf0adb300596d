# syntax=docker/dockerfile:1
# The one tributary binary (scheduler, executor, standalone, sql shell) in a small Debian
# image, running as the unprivileged user 10001.
#   docker build -t tributary:0.1.0 .
# Kubernetes manifests: k8s/ (k8s/README.md).

# ---- build ---------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
# rdkafka builds librdkafka from source with its ./configure + make (a C toolchain, zlib for
# the `libz` feature, python3 for its linker script; no OpenSSL, SASL or curl: those features
# are off). aws-lc-sys, zstd-sys and SQLite (bundled) need only the C compiler. No protoc or
# cmake: our protobuf messages are prost derives and Ballista ships its generated code. The
# Rust image has most of these; they are listed so the build does not rely on that.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config zlib1g-dev python3 perl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The registry and target caches survive between builds (BuildKit); the binary is copied out
# of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tributary \
 && install -m 0755 target/release/tributary /usr/local/bin/tributary

# ---- run -----------------------------------------------------------------------------------
FROM debian:bookworm-slim
# CA certificates for TLS to S3 and databases (rustls reads the system store); zlib for
# librdkafka. Everything else is linked statically.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tributary \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/tributary --no-create-home \
      --shell /usr/sbin/nologin tributary \
 && mkdir -p /etc/tributary/catalog /etc/tributary/kafka /var/lib/tributary/work \
 && chown -R 10001:10001 /var/lib/tributary
COPY --from=builder /usr/local/bin/tributary /usr/local/bin/tributary
# A default catalog that needs nothing outside (TPC-H generated on the fly). Kubernetes mounts
# its ConfigMap of catalogs over /etc/tributary/catalog.
COPY k8s/base/etc/catalog/tpch.properties /etc/tributary/catalog/tpch.properties
ENV TRIBUTARY_ETC=/etc/tributary
WORKDIR /var/lib/tributary
USER 10001:10001
# Scheduler: 50051 Flight SQL, 50050 scheduler gRPC, 8080 HTTP (UI, /metrics, /v1, probes).
# Executor: 50052 Flight (shuffle and results), 50053 gRPC (tasks), 8081 HTTP.
EXPOSE 50051 50050 8080 50052 50053 8081
# Kubernetes probes /healthz and /readyz over HTTP (k8s/base); the image has no HTTP client to
# run a Docker health check with, and the port depends on the role.
HEALTHCHECK NONE
ENTRYPOINT ["tributary"]
# `docker run -p 50051:50051 tributary:0.1.0` starts a one-container cluster (scheduler and
# two executors) on the TPC-H catalog; Kubernetes passes `scheduler …` / `executor …` instead.
CMD ["standalone", "--flight-sql-addr", "0.0.0.0:50051", "--http-addr", "0.0.0.0:8080"]
