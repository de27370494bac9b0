# One image for every ragmesh service; SERVICES picks what a container runs.
FROM node:22-bookworm-slim

# OCR language data from Debian (Apache-2.0); verified against the model manifest at load.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr-eng tesseract-ocr-rus ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV NODE_ENV=production \
    ONNXRUNTIME_NODE_INSTALL=skip \
    ORT_DISABLE_TELEMETRY=1 \
    RAGMESH_PROFILE=mesh
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev && npm cache clean --force
COPY . .

ARG BUILD_COMMIT=""
ENV BUILD_COMMIT=${BUILD_COMMIT}

USER node
EXPOSE 3000 9090
CMD ["node", "--import", "tsx", "main.ts"]
