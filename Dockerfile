# Image for the Node services (gateway, tenant-resource service), on the active Node
# LTS. OpenFGA runs from its own image in docker-compose.yml; nothing here downloads
# binaries at run time.

# Build: the dev dependencies (TypeScript, Vite) compile src/ into dist/ and bundle the
# web console (console/) into dist/console/.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY console ./console
RUN npm run build

# Run: production dependencies and the compiled code only (no tsx, no TypeScript).
FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY model.fga ./
COPY policy ./policy
COPY demo ./demo
# TIERGATE_DATA_DIR of the deployments (docker-compose.yml, deploy/kubernetes): the
# gateway's signing key lives there, so it belongs to the user the gateway runs as.
RUN mkdir -p /var/lib/tiergate && chown node:node /var/lib/tiergate && chmod 0700 /var/lib/tiergate
USER node
EXPOSE 8080 8090 9464
# The gateway by default; docker-compose.yml runs the tenant service from the same image
# (package.json "start:tenant-service"). Both run with the heap flag of
# src/shared/node-flags.ts (why is written there); these commands are package.json's
# "start:gateway" and "start:tenant-service" without npm in between, so SIGTERM reaches node.
CMD ["node", "--initial-old-space-size=128", "dist/server/gateway-main.js"]
