# syntax=docker/dockerfile:1
#
# viewsync as a container: a static binary on an empty image, run as an
# unprivileged user, its data in the volume /data.
#
#   docker build -t viewsync .
#   docker run -p 8080:8080 -v viewsync-data:/data -e VIEWSYNC_AUTH_SECRET=… viewsync
#
# Without an auth secret viewsync refuses to listen on every interface;
# to try it out, -e VIEWSYNC_INSECURE_ANONYMOUS=true lets anyone in.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/viewsync ./cmd/viewsync
RUN mkdir -p /out/data

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=build /out/viewsync /viewsync
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV VIEWSYNC_ADDR=0.0.0.0:8080 \
    VIEWSYNC_DATA=/data
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=4s --start-period=10s --retries=3 CMD ["/viewsync", "health"]
ENTRYPOINT ["/viewsync"]
CMD ["serve"]
