// `node dist-server/main.js`: a primary process that serves the metrics (METRICS_PORT) and
// supervises WEB_CONCURRENCY worker processes that share PORT. On SIGTERM every worker stops
// accepting, finishes what is in flight and exits; then the primary exits 0.
import "./tracing.js";

import cluster, { type Worker } from "node:cluster";
import http from "node:http";

import { AggregatorRegistry } from "prom-client";

import { createApp } from "./app.js";
import { createLogger } from "./logger.js";
import { Metrics } from "./metrics.js";
import { loadSettings } from "./settings.js";
import { tracerProvider } from "./tracing.js";

// Under the pod's grace period (30 s).
const GRACEFUL_SHUTDOWN_MS = 25_000;
const settings = loadSettings();
const logger = createLogger(settings.service);

function primary(): void {
  let stopping = false;
  const workers = new Set<Worker>();
  const start = () => {
    const worker = cluster.fork();
    workers.add(worker);
    worker.on("exit", (code, signal) => {
      workers.delete(worker);
      if (stopping) {
        if (workers.size === 0) {
          logger.info("stopped");
          process.exit(0);
        }
      } else {
        logger.error({ code, signal }, "a worker died; starting another");
        start();
      }
    });
  };
  for (let i = 0; i < settings.workers; i += 1) {
    start();
  }
  if (settings.metricsPort !== undefined) {
    const aggregator = new AggregatorRegistry();
    http
      .createServer((request, response) => {
        if ((request.url ?? "").split("?")[0] !== "/metrics") {
          response.writeHead(404).end();
          return;
        }
        aggregator.clusterMetrics().then(
          (text) => response.writeHead(200, { "content-type": aggregator.contentType }).end(text),
          (error: Error) => response.writeHead(500).end(error.message),
        );
      })
      .listen(settings.metricsPort);
  }
  process.on("SIGTERM", () => {
    if (stopping) {
      return;
    }
    stopping = true;
    logger.info({ workers: workers.size }, "SIGTERM: draining");
    for (const worker of workers) {
      worker.send("shutdown");
    }
    setTimeout(() => {
      logger.error("workers did not drain in time");
      process.exit(1);
    }, GRACEFUL_SHUTDOWN_MS).unref();
  });
  logger.info(
    { port: settings.port, workers: settings.workers, environment: settings.environment, orchestrator: settings.orchestratorUrl ?? null },
    "started",
  );
}

function worker(): void {
  const metrics = new Metrics();
  AggregatorRegistry.setRegistries([metrics.registry]);
  // Constructing one makes this worker answer the primary's requests for its metrics.
  new AggregatorRegistry();
  const server = http.createServer(createApp({ ...settings, logger, metrics }));
  server.listen(settings.port);
  const shutdown = () => {
    server.close(() => {
      void (tracerProvider?.shutdown() ?? Promise.resolve()).finally(() => process.exit(0));
    });
    server.closeIdleConnections();
  };
  process.on("message", (message) => message === "shutdown" && shutdown());
  // The primary drains the workers; a signal sent to the whole process group is the same request.
  process.on("SIGTERM", shutdown);
}

if (cluster.isPrimary) {
  primary();
} else {
  worker();
}
