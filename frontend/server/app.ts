// The static server: the built dashboard, /api proxied to the orchestrator (so the dashboard
// works without the ingress), and the platform contract's /health and /ready.
import { existsSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import { join } from "node:path";

import type { Logger } from "pino";
import sirv from "sirv";

import { spanIds } from "./logger.js";
import type { Metrics } from "./metrics.js";

export interface AppOptions {
  service: string;
  /** The built dashboard. */
  root: string;
  orchestratorUrl: string | undefined;
  logger: Logger;
  metrics: Metrics;
}

const UPSTREAM_TIMEOUT_MS = 15_000;
// Hop-by-hop headers (RFC 9110, 7.6.1) stay on their own connection.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
]);
const SECURITY_HEADERS = {
  "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

/** The route label of a request: a fixed set, never the raw path. */
export function routeOf(path: string): string {
  if (path === "/health" || path === "/ready") {
    return path;
  }
  if (path === "/api" || path.startsWith("/api/")) {
    return "/api";
  }
  return "/";
}

function forwardable(headers: http.IncomingHttpHeaders | http.OutgoingHttpHeaders): http.OutgoingHttpHeaders {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name.toLowerCase())));
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  response.end(JSON.stringify(body));
}

function proxy(upstream: string | undefined, request: IncomingMessage, response: ServerResponse): void {
  if (upstream === undefined) {
    sendJson(response, 503, { detail: "ORCHESTRATOR_URL is not set" });
    return;
  }
  const target = new URL(request.url ?? "/", upstream);
  const client = target.protocol === "https:" ? https : http;
  const outgoing = client.request(
    target,
    { method: request.method, headers: forwardable(request.headers), timeout: UPSTREAM_TIMEOUT_MS },
    (answer) => {
      response.writeHead(answer.statusCode ?? 502, forwardable(answer.headers));
      answer.pipe(response);
    },
  );
  outgoing.on("timeout", () => outgoing.destroy(new Error("timeout")));
  outgoing.on("error", (error) => {
    if (!response.headersSent) {
      sendJson(response, error.message === "timeout" ? 504 : 502, { detail: `orchestrator: ${error.message}` });
    } else {
      response.destroy();
    }
  });
  request.pipe(outgoing);
}

export function createApp(options: AppOptions): http.RequestListener {
  const { metrics, logger } = options;
  const index = join(options.root, "index.html");
  const assets = sirv(options.root, {
    single: true,
    etag: true,
    // Vite fingerprints what it puts in assets/; index.html must always be fresh.
    setHeaders: (response, path) => {
      response.setHeader("cache-control", path.startsWith("/assets/") ? "public, max-age=31536000, immutable" : "no-cache");
    },
  });

  return (request, response) => {
    const started = process.hrtime.bigint();
    const path = (request.url ?? "/").split("?")[0];
    const route = routeOf(path);
    const method = request.method ?? "GET";
    const ids = spanIds();
    metrics.inFlight.inc();
    response.once("close", () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.inFlight.dec();
      metrics.requests.inc({ method, route, status: String(response.statusCode) });
      metrics.duration.observe({ method, route }, seconds);
      logger.info(
        { ...ids, method, path, status: response.statusCode, duration_ms: Math.round(seconds * 1e4) / 10 },
        `${method} ${path} ${response.statusCode}`,
      );
    });

    if (route === "/health") {
      sendJson(response, 200, { status: "healthy", service: options.service });
    } else if (route === "/ready") {
      // Ready when there is a dashboard to serve. The orchestrator is not a readiness
      // dependency: the dashboard's job includes showing that it is down.
      const ready = existsSync(index);
      sendJson(response, ready ? 200 : 503, { status: ready ? "ready" : "unavailable", service: options.service });
    } else if (route === "/api") {
      proxy(options.orchestratorUrl, request, response);
    } else if (method !== "GET" && method !== "HEAD") {
      response.setHeader("allow", "GET, HEAD");
      sendJson(response, 405, { detail: "method not allowed" });
    } else {
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
        response.setHeader(name, value);
      }
      assets(request, response, () => sendJson(response, 404, { detail: "not found" }));
    }
  };
}
