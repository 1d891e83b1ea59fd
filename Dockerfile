# Container image for acr-cache-proxy.
#
# Build from the repository root:
#   docker build -t acr-cache-proxy:local .
#
# Run it with the port published on the host's loopback only. A registry
# mirror cannot authenticate its clients, so anyone who can reach the port can
# pull through your registry identity:
#   docker run --rm -p 127.0.0.1:8080:8080 \
#     -e ACR_CACHE_PROXY_UPSTREAM_DOMAIN=example.azurecr.io \
#     -e ACR_CACHE_PROXY_UPSTREAM_PREFIX=hub \
#     acr-cache-proxy:local
# or with --network host and "--listen-address 127.0.0.1:8080" (see
# contrib/docker-compose/compose.yaml).

# --- Stage 1: compile main.ts into one self-contained executable -----------
# Pinned by tag: keep it equal to the Deno version CI and the release workflow
# use, so that the binary matches what was tested.
FROM denoland/deno:2.9.6 AS build

# Which root certificates the binary trusts is fixed at compile time. The
# default is Deno's built-in Mozilla bundle. Use "system,mozilla" to trust
# the runtime image's /etc/ssl/certs as well (for example a corporate root
# added by a derived image or mounted over it).
ARG DENO_TLS_CA_STORE=mozilla

WORKDIR /src

# Dependencies first: this layer is reused as long as deno.json and deno.lock
# do not change. deno.lock is optional here (the glob matches nothing when it
# is absent).
COPY deno.json deno.lock* ./
RUN deno install

COPY *.ts ./
COPY src/ ./src/

# `deno task compile` carries the permission flags (--allow-net, --allow-env,
# --allow-sys=uid,osRelease, --allow-run=az, --allow-read) and the output path
# dist/acr-cache-proxy, so the image and the release binaries cannot drift
# apart. The binary runs once to prove it starts.
RUN deno task compile && ./dist/acr-cache-proxy --version

# --- Stage 2: a small health probe for `docker compose` healthchecks ----------
# The runtime image has no shell and no HTTP client, and a Docker healthcheck
# runs inside the container. busybox's musl build is statically linked;
# installed under the name "wget" it behaves as wget only.
FROM busybox:1.37.0-musl AS probe

# --- Stage 3: runtime ------------------------------------------------------
# A `deno compile` binary is dynamically linked against glibc (libc, libm,
# libdl, libpthread, librt) and libgcc_s, so distroless/static (no libc) cannot
# run it. distroless/cc adds glibc and libgcc to CA certificates, tzdata and a
# "nonroot" user (uid/gid 65532), and has no shell and no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot

COPY --from=probe /bin/busybox /usr/local/bin/wget
COPY --from=build /src/dist/acr-cache-proxy /usr/local/bin/acr-cache-proxy

# Numeric on purpose: Kubernetes' runAsNonRoot can only verify a numeric user.
# 65532 is distroless' "nonroot".
USER 65532:65532

EXPOSE 8080

ENTRYPOINT ["/usr/local/bin/acr-cache-proxy"]

# The program's own default (127.0.0.1:8080) would be unreachable through a
# published port, because inside a container's network namespace loopback is
# the container's own. Listening on all interfaces is explicit here, and it is
# only safe because the container's port is published on the host's loopback
# (-p 127.0.0.1:8080:8080). With host networking, override this with
# "--listen-address 127.0.0.1:8080".
CMD ["--listen-address", "0.0.0.0:8080"]
