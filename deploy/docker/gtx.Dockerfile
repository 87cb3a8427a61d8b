# The gtx command (coordinator `gtx tc`, operator `gtx tx`): a static binary
# on a distroless base, running as a non-root user.
#
#   docker build -f deploy/docker/gtx.Dockerfile -t gtx:dev .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/gtx ./cmd/gtx

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gtx /usr/local/bin/gtx
USER 65532:65532
# gRPC (coordinator and health), Prometheus metrics.
EXPOSE 8091 9091
ENTRYPOINT ["/usr/local/bin/gtx"]
CMD ["tc", "--listen", "0.0.0.0:8091"]
