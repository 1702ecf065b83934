# Image for the Node services (gateway, tenant-resource service). OpenFGA runs from
# its own image in docker-compose.yml; nothing here downloads binaries at run time.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY tsconfig.json model.fga ./
COPY src ./src
COPY policy ./policy
COPY demo ./demo
USER node
EXPOSE 8080 8090 9464
# The command is chosen per service in docker-compose.yml; both run with the heap flag
# of src/shared/node-flags.ts (why is written there).
CMD ["node", "--initial-old-space-size=128", "--import", "tsx", "src/server/gateway-main.ts"]
