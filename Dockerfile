# syntax=docker/dockerfile:1
#
# The image of every scaler: one static binary on distroless, running as
# nonroot. SERVICE names the scaler (a folder of services/); build it from
# the repository root (the context needs proto/, libs/scalerkit/ and
# libs/testkit/go.mod beside the service):
#
#   docker build --build-arg SERVICE=<name> --build-arg VERSION=v0.1.0 -t <name>:v0.1.0 .
#
# The builder runs on the build machine's platform and cross-compiles for the
# target one, so a multi-arch build needs no emulation for the Go part.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
ARG SERVICE
RUN test -n "$SERVICE" || { echo "--build-arg SERVICE=<a folder of services/> is required" >&2; exit 2; }
# The service's go.mod replaces libs/scalerkit and proto with ../../ paths:
# the module builds alone, without go.work, exactly as a release does.
ENV GOWORK=off CGO_ENABLED=0
WORKDIR /src/services/${SERVICE}
# Module files only, so that this download layer is rebuilt only when one of
# them changes. The replaced modules contribute their requirements through
# their go.mod; libs/testkit is required by the service's tests only, so
# its go.mod is all the build reads of it.
COPY proto/go.mod /src/proto/
COPY libs/scalerkit/go.mod /src/libs/scalerkit/
COPY libs/testkit/go.mod /src/libs/testkit/
COPY services/${SERVICE}/go.mod services/${SERVICE}/go.sum ./
RUN go mod download
COPY proto/ /src/proto/
COPY libs/scalerkit/ /src/libs/scalerkit/
COPY services/${SERVICE}/ ./
ARG VERSION=dev
# One path for every service: the runtime stage's ENTRYPOINT is exec form,
# which expands no variable.
RUN --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
      -ldflags "-s -w -X github.com/kedascalers/kedascalers/libs/scalerkit.Version=${VERSION}" \
      -o /out/scaler .

# static-debian12: CA certificates, tzdata and /etc/passwd, no shell, no
# libc; :nonroot runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
ARG SERVICE
ARG VERSION=dev
LABEL org.opencontainers.image.title="${SERVICE}" \
      org.opencontainers.image.description="KEDA external scaler ${SERVICE} (kedascalers)" \
      org.opencontainers.image.source="https://github.com/kedascalers/kedascalers" \
      org.opencontainers.image.url="https://github.com/kedascalers/kedascalers/tree/main/services/${SERVICE}" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/scaler /scaler
USER 65532:65532
# 9090: gRPC (ExternalScaler, grpc.health.v1); 8080: /metrics /healthz /readyz
EXPOSE 9090 8080
ENTRYPOINT ["/scaler"]
