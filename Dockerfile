# syntax=docker/dockerfile:1
# Multi-stage build of the dhcpair image: the server dhcpair and the operator dhcpair-operator.
# Runtime: debian-slim, non-root; the server needs CAP_NET_BIND_SERVICE and CAP_NET_RAW
# (SO_BINDTODEVICE) granted by the pod spec, nothing else.
#
# Where the runtime stage takes its two binaries from:
#   BINARIES=build (default)  compiled in the `build` stage below: `docker build .`
#   BINARIES=host             target/release/{dhcpair,dhcpair-operator} from the build context,
#                             built beforehand on a Debian 12 host with
#                             `cargo build --release --locked -p dhcpair -p dhcpair-operator`
#                             (scripts/test-image.sh; for machines that cannot pull the rust image):
#                             `buildah bud --target runtime --build-arg BINARIES=host .`
# BuildKit and buildah build only the stages the target needs, so each path skips the other.
# buildah before 1.29 (Debian 12 has 1.28) ignores this default when it picks the stages to
# build; there, give `--build-arg BINARIES=build` explicitly for the normal path.
ARG BINARIES=build

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p dhcpair -p dhcpair-operator

FROM scratch AS host
COPY target/release/dhcpair target/release/dhcpair-operator /src/target/release/

FROM ${BINARIES} AS binaries
# One instruction: buildah 1.28 leaves the working container of an empty stage behind.
WORKDIR /src/target/release

FROM docker.io/library/debian:bookworm-slim AS runtime
# setcap comes from libcap2-bin; installed before the binaries are copied so that this layer
# (the only one that needs the Debian mirror) is reused from the build cache when only the
# binaries change, and purged again once the capabilities are set.
RUN apt-get update && apt-get install -y --no-install-recommends libcap2-bin \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/dhcpair --create-home dhcpair
COPY --from=binaries /src/target/release/dhcpair /src/target/release/dhcpair-operator /usr/local/bin/
# A non-root process keeps added capabilities only through file capabilities (the operator's
# StatefulSet adds NET_BIND_SERVICE and NET_RAW and allows privilege escalation for this).
RUN setcap cap_net_bind_service,cap_net_raw=ep /usr/local/bin/dhcpair \
 && apt-get purge -y libcap2-bin && apt-get autoremove -y
USER 10001
VOLUME ["/var/lib/dhcpair"]
ENTRYPOINT ["/usr/local/bin/dhcpair"]
CMD ["serve", "--config", "/etc/dhcpair/dhcpair.yaml"]
