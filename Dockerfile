# Docker is not available where this service is developed: test/unit/dockerfile.test.ts parses
# this file and runs its steps by hand (copies, production install, start, healthcheck).
FROM oven/bun:1.4.5 AS deps
WORKDIR /app
COPY package.json bun.lock ./
RUN bun install --frozen-lockfile --production

FROM oven/bun:1.4.5
WORKDIR /app
ENV NODE_ENV=production PORT=7004 DATA_DIR=/app/data
COPY --from=deps /app/node_modules ./node_modules
COPY package.json bun.lock tsconfig.json ./
COPY src ./src
COPY migrations ./migrations
COPY scripts ./scripts
# The image's non-root user owns only the embedded database's folder, a volume of its own.
RUN mkdir -p /app/data && chown -R bun:bun /app/data
VOLUME ["/app/data"]
USER bun
EXPOSE 7004
# Liveness only (/health answers while the process serves); readiness is for the orchestrator.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 CMD ["bun", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 7004) + '/health').then(r => process.exit(r.ok ? 0 : 1)).catch(() => process.exit(1))"]
# The service itself, without a `bun run` parent process in between.
CMD ["bun", "src/main.ts"]
