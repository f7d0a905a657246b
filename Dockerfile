# ldapscim's container image: a static binary on distroless (CA certificates, tzdata, no shell),
# running as the non-root user 65532 with the cache in the /var/lib/ldapscim volume.
#
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg COMMIT="$(git rev-parse --short=12 HEAD)" -t ldapscim .     (or: make image)
#
# Mount the config at /etc/ldapscim/config.toml; see README "Install" for a run command.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=
# Static (no libc: distroless/static has none) and without local paths in the binary. The
# config baked in is the example with the cache in the volume: mount your own over it.
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/usr/bin/ldapscim ./cmd/ldapscim \
 && install -d -m 0750 /out/var/lib/ldapscim \
 && install -d -m 0755 /out/etc/ldapscim \
 && sed '/^\[cache\]/,/^\[/ s|^dir = .*|dir = "/var/lib/ldapscim"|' config.toml.example >/out/etc/ldapscim/config.toml \
 && grep -qx 'dir = "/var/lib/ldapscim"' /out/etc/ldapscim/config.toml \
 && /out/usr/bin/ldapscim check-config --config /out/etc/ldapscim/config.toml >/dev/null

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/usr/bin/ldapscim /usr/bin/ldapscim
COPY --from=build /out/etc/ldapscim /etc/ldapscim
COPY --from=build --chown=65532:65532 /out/var/lib/ldapscim /var/lib/ldapscim
USER 65532:65532
VOLUME /var/lib/ldapscim
# 9090: the admin server (health, metrics, status), 8080: the SCIM API, when the config enables them.
EXPOSE 9090 8080
ENTRYPOINT ["/usr/bin/ldapscim"]
CMD ["serve", "--config", "/etc/ldapscim/config.toml"]
