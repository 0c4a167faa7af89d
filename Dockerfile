# syntax=docker/dockerfile:1.7
# wearon-worker production image: build with dev dependencies, ship compiled JS + production dependencies only.
# Node 24 is the current LTS line; pin the exact patch (bump deliberately, with the lockfile's native modules).
ARG NODE_IMAGE=node:24.18.0-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Toolchain only for native modules without a prebuilt binary for this Node ABI (better-sqlite3); stays in this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bin ./bin
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force
# The pose model and the LiteRT runtime ship inside the image (no download at run time); fail the build if missing.
RUN set -e; p=node_modules/@mediapipe/pose; \
    for f in pose_solution_packed_assets.data pose_landmark_lite.tflite pose_landmark_full.tflite pose_landmark_heavy.tflite; do \
      test -s "$p/$f" || { echo "missing $p/$f" >&2; exit 1; }; \
    done; \
    test -d node_modules/@litertjs/core/wasm || { echo "missing LiteRT wasm" >&2; exit 1; }; \
    test -f dist/cli/main.js

FROM ${NODE_IMAGE} AS runtime
# tini as PID 1: forwards SIGTERM to node (graceful drain) and reaps zombies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/data
WORKDIR /app
# Code is owned by root and read-only for the runtime user; only /data is writable.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=40s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8000)+'/health/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/bin/wearon.mjs"]
CMD ["serve"]
