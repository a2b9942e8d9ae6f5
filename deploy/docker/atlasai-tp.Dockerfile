# syntax=docker/dockerfile:1
# AtlasAI tenant plane (atlasai-tp). Build from the repository root:
#   docker build -f deploy/docker/atlasai-tp.Dockerfile -t atlasai-tp .

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target caches make rebuilds incremental; --locked builds exactly the
# dependency versions in Cargo.lock.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p atlasai-tenant-plane --bin atlasai-tp \
    && cp target/release/atlasai-tp /atlasai-tp

# distroless "cc": glibc, CA certificates and tzdata, no shell or package manager; the
# :nonroot tag runs as uid 65532, which the Helm chart's securityContext expects.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /atlasai-tp /usr/local/bin/atlasai-tp
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/atlasai-tp"]
CMD ["serve"]
