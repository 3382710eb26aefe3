# PrivateLine: one image with the homeserver and the web client it serves at /.
#
#   docker build -t privateline .
#   docker run -p 8080:8080 -v privateline-data:/data privateline
#
# Configuration is the homeserver's environment (README.md, .env.example);
# for production pass PRIVATELINE_ENV=production, SERVER_NAME, JWT_SECRET_KEY
# and AES_KEY from a file that is never committed (docker-compose.yml shows
# how). Federation listens on UDP 8448 when FEDERATION_LISTEN_ADDR is set,
# gossip on TCP and UDP 7946 when FEDERATION_GOSSIP_ADDR is (docs/federation.md).

# --- The web client ----------------------------------------------------------
FROM node:20-bookworm AS web
WORKDIR /src/clients/web
COPY clients/web/package.json clients/web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY clients/web/ ./
# The web client's tests read spec/vectors; the build type-checks them.
COPY spec/ /src/spec/
RUN npm run build

# --- The homeserver ----------------------------------------------------------
FROM golang:1.26-bookworm AS go
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/homeserver ./cmd/homeserver

# --- The image ---------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: HTTPS to peers' server documents and to Sentry;
# curl: the health check.
RUN apt-get update \
	&& apt-get install -y --no-install-recommends ca-certificates curl \
	&& rm -rf /var/lib/apt/lists/* \
	&& useradd --system --uid 10001 --user-group --home-dir /data --no-create-home privateline \
	&& mkdir -p /data /app \
	&& chown privateline:privateline /data \
	&& chmod 0700 /data
COPY --from=go /out/homeserver /app/homeserver
COPY --from=web /src/clients/web/dist /app/web
# LISTEN_ADDR and the health check below go together; METRICS_ADDR is off
# (set it to e.g. 0.0.0.0:9464 and publish the port to scrape /metrics).
ENV LISTEN_ADDR=:8080 \
	DATA_DIR=/data \
	WEB_ROOT=/app/web \
	METRICS_ADDR=
USER privateline
WORKDIR /app
VOLUME ["/data"]
# 8080/tcp: the client API and the web client; 8448/udp: federation (QUIC);
# 7946/tcp and udp: gossip (discovery).
EXPOSE 8080/tcp 8448/udp 7946/tcp 7946/udp
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
	CMD curl -fsS -o /dev/null http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/app/homeserver"]
