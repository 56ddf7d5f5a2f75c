# syntax=docker/dockerfile:1
# Multi-stage build of the dhcpair image: the server (and, from the Kubernetes milestone on,
# the operator dhcpair-operator). Runtime: debian-slim, non-root; the server needs CAP_NET_BIND_SERVICE and
# CAP_NET_RAW (SO_BINDTODEVICE) granted by the pod spec, nothing else.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p dhcpair -p dhcpair-operator

FROM docker.io/library/debian:bookworm-slim AS runtime
RUN useradd --system --uid 10001 --home-dir /var/lib/dhcpair --create-home dhcpair
COPY --from=build /src/target/release/dhcpair /usr/local/bin/dhcpair
COPY --from=build /src/target/release/dhcpair-operator /usr/local/bin/dhcpair-operator
# A non-root process keeps added capabilities only through file capabilities (the operator's
# StatefulSet adds NET_BIND_SERVICE and NET_RAW and allows privilege escalation for this).
RUN apt-get update && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap cap_net_bind_service,cap_net_raw=ep /usr/local/bin/dhcpair \
 && apt-get purge -y libcap2-bin && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
USER 10001
VOLUME ["/var/lib/dhcpair"]
ENTRYPOINT ["/usr/local/bin/dhcpair"]
CMD ["serve", "--config", "/etc/dhcpair/dhcpair.yaml"]
