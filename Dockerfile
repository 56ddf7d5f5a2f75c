# syntax=docker/dockerfile:1
# Multi-stage build of the dhcpair image: the server (and, from the Kubernetes milestone on,
# the operator). Runtime: debian-slim, non-root; the server needs CAP_NET_BIND_SERVICE and
# CAP_NET_RAW (SO_BINDTODEVICE) granted by the pod spec, nothing else.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p dhcpair

FROM docker.io/library/debian:bookworm-slim AS runtime
RUN useradd --system --uid 10001 --home-dir /var/lib/dhcpair --create-home dhcpair
COPY --from=build /src/target/release/dhcpair /usr/local/bin/dhcpair
USER 10001
VOLUME ["/var/lib/dhcpair"]
ENTRYPOINT ["/usr/local/bin/dhcpair"]
CMD ["serve", "--config", "/etc/dhcpair/dhcpair.yaml"]
