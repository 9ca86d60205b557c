# Static musl binaries in a scratch image: miroir (admin + data plane launcher),
# miroir-admin, miroir-dataplane, miroir-ctl. Admin and data plane share one LMDB snapshot
# environment, so run them in one container (or with shareProcessNamespace): see
# docs/decisions/001-control-protocol.md and docs/architecture.md#lmdb-constraints.
FROM rust:1.95-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
      -p miroir-admin -p miroir-runtime \
 && mkdir /out \
 && cp target/release/miroir target/release/miroir-admin target/release/miroir-dataplane \
       target/release/miroir-ctl /out/

FROM scratch
COPY --from=build /out/ /usr/local/bin/
COPY deploy/examples/miroir.yaml /etc/miroir/miroir.yaml
EXPOSE 7700 7701
ENTRYPOINT ["/usr/local/bin/miroir", "--config", "/etc/miroir/miroir.yaml"]
