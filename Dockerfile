# One image with every feedmill binary: feedmill, feedmill-connector-*,
# feedmill-sink (demo webhook receiver) and feedmill-healthcheck (for
# container health checks; the final image has no shell).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/... \
 && mkdir -p /data/feedmill

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
# State directory, owned by the nonroot user (65532) so named volumes
# mounted here inherit a writable owner.
COPY --from=build --chown=65532:65532 /data/feedmill /var/lib/feedmill
USER 65532:65532
WORKDIR /var/lib/feedmill
EXPOSE 8080 8090
ENTRYPOINT []
CMD ["/usr/local/bin/feedmill", "-h"]
