# syntax=docker/dockerfile:1
# The flowyard binary (API, worker, migrations) on a distroless base, as a non-root user.
# Build from the repository root:
#   docker build -f deploy/docker/flowyard.Dockerfile --build-arg VERSION=0.1.0 -t ghcr.io/flowyard/flowyard:0.1.0 .

FROM golang:1.26.8 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
# Pure Go (modernc SQLite, pgdriver): a static binary that needs no libc.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X github.com/flowyard/flowyard/platform.Version=${VERSION}" \
      -o /out/flowyard ./cmd/flowyard

# static-debian12 has CA certificates (Postgres and Temporal Cloud over TLS) and time zones, and no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/flowyard /usr/local/bin/flowyard
COPY temporal.yaml /etc/flowyard/temporal.yaml
ENV FLOWYARD_TEMPORAL_CONFIG=/etc/flowyard/temporal.yaml \
    FLOWYARD_DATA_DIR=/var/lib/flowyard \
    FLOWYARD_LISTEN=0.0.0.0:8080 \
    FLOWYARD_METRICS_LISTEN=0.0.0.0:9090 \
    FLOWYARD_LOG_FORMAT=json
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/flowyard"]
CMD ["serve"]
