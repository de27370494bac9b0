# One image for every ragmesh service; SERVICES picks what a container runs.
# docker build -t "$REGISTRY/ragmesh:$RAGMESH_VERSION" --build-arg BUILD_COMMIT=$(git rev-parse HEAD) .
#
# Layout (docs/operations.md; test/image-layout.test.ts starts the service with it as an
# unprivileged user):
#   /app                       code and node_modules, owned by root, read-only to the service
#   /var/lib/ragmesh           DATA_DIR: the only data the process writes (volume)
#   /var/cache/ragmesh/models  MODELS_CACHE_DIR: verified model files (volume)
ARG NODE_IMAGE=node:22.23.3-bookworm-slim

# --- production dependencies only (no devDependencies, no npm cache) -------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip \
    ORT_DISABLE_TELEMETRY=1
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime -------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
# tini reaps children and forwards SIGTERM so a rolling update drains instead of being killed.
# OCR language data from Debian (Apache-2.0); verified against the model manifest at load.
# pg_dump/pg_restore for backups (major 15, as the stack's PostgreSQL).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini tesseract-ocr-eng tesseract-ocr-rus ca-certificates postgresql-client \
 && rm -rf /var/lib/apt/lists/*

# A fixed uid/gid, so volume ownership survives image rebuilds and host bind mounts can match it.
RUN groupadd --system --gid 10001 ragmesh \
 && useradd --system --uid 10001 --gid ragmesh --home-dir /var/lib/ragmesh --no-create-home --shell /usr/sbin/nologin ragmesh \
 && mkdir -p /var/lib/ragmesh /var/cache/ragmesh/models \
 && chown -R ragmesh:ragmesh /var/lib/ragmesh /var/cache/ragmesh \
 && chmod 0750 /var/lib/ragmesh /var/cache/ragmesh /var/cache/ragmesh/models

WORKDIR /app
ENV NODE_ENV=production \
    ONNXRUNTIME_NODE_INSTALL=skip \
    ORT_DISABLE_TELEMETRY=1 \
    RAGMESH_PROFILE=mesh \
    HOME=/var/lib/ragmesh \
    DATA_DIR=/var/lib/ragmesh \
    MODELS_CACHE_DIR=/var/cache/ragmesh/models \
    TESSDATA_DIR=/usr/share/tesseract-ocr/5/tessdata \
    PORT=3000 \
    HEALTH_PORT=9090

COPY --from=deps /app/node_modules ./node_modules
COPY . .

ARG BUILD_COMMIT=""
ENV BUILD_COMMIT=${BUILD_COMMIT}

# Declared so a container never writes into its image layer, even without a mount.
VOLUME ["/var/lib/ragmesh", "/var/cache/ragmesh/models"]
USER ragmesh:ragmesh
EXPOSE 3000 9090
HEALTHCHECK --interval=10s --timeout=4s --start-period=90s --retries=3 CMD ["node", "scripts/healthcheck.ts"]
ENTRYPOINT ["/usr/bin/tini", "--"]
# V8 flags: lib/runtime/node-flags.ts says why (a steady footprint under steady load).
CMD ["node", "--min-semi-space-size=16", "--max-semi-space-size=16", "--no-memory-reducer", "--heap-growing-percent=25", "--experimental-async-context-frame", "--import", "tsx", "main.ts"]
