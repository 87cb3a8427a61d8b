# The sample's order service: a static binary on a distroless base, running
# as a non-root user. Built without cgo, it serves MariaDB/MySQL (and
# SQLite) but not PostgreSQL, whose AT dialect needs cgo (see
# samples/order-inventory/README.md, "On PostgreSQL").
#
#   docker build -f deploy/docker/order.Dockerfile -t gtx-sample-order:dev .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/order ./samples/order-inventory/cmd/order

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/order /usr/local/bin/order
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/order"]
