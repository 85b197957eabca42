# syntax=docker/dockerfile:1
# The device agent. It runs Node-RED as a child process and installs it (and palette modules) with npm,
# so the runtime stage is Node.js with npm, not distroless; it runs as the image's unprivileged "node" user.
# Build from the repository root:
#   docker build -f deploy/docker/flowyard-agent.Dockerfile --build-arg VERSION=0.1.0 -t ghcr.io/flowyard/flowyard-agent:0.1.0 .

FROM golang:1.26.8 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/flowyard-agent ./cmd/flowyard-agent

FROM node:22-bookworm-slim
RUN mkdir -p /var/lib/flowyard-agent && chown node:node /var/lib/flowyard-agent
COPY --from=build /out/flowyard-agent /usr/local/bin/flowyard-agent
ENV NODE_ENV=production
USER node
WORKDIR /var/lib/flowyard-agent
VOLUME ["/var/lib/flowyard-agent"]
EXPOSE 1880
ENTRYPOINT ["/usr/local/bin/flowyard-agent"]
