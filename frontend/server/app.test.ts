// @vitest-environment node
import { mkdtempSync, writeFileSync, mkdirSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";

import { afterEach, describe, expect, it } from "vitest";

import { createApp, routeOf } from "./app.js";
import { createLogger } from "./logger.js";
import { Metrics } from "./metrics.js";

const servers: http.Server[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((done) => server.close(done))));
});

async function listen(listener: http.RequestListener): Promise<string> {
  const server = http.createServer(listener);
  servers.push(server);
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function dashboard(): string {
  const root = mkdtempSync(join(tmpdir(), "dashboard-"));
  mkdirSync(join(root, "assets"));
  writeFileSync(join(root, "index.html"), "<!doctype html><title>Sophia AI</title>");
  writeFileSync(join(root, "assets", "index-abc123.js"), "console.log(1)");
  return root;
}

async function start(orchestratorUrl: string | undefined, root = dashboard()) {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  const metrics = new Metrics();
  const url = await listen(createApp({ service: "frontend", root, orchestratorUrl, logger: createLogger("frontend", sink), metrics }));
  return { url, metrics, lines };
}

describe("the static server", () => {
  it("answers /health and /ready", async () => {
    const { url } = await start(undefined);
    expect(await (await fetch(`${url}/health`)).json()).toEqual({ status: "healthy", service: "frontend" });
    expect((await fetch(`${url}/ready`)).status).toBe(200);
  });

  it("is not ready without a built dashboard", async () => {
    const { url } = await start(undefined, mkdtempSync(join(tmpdir(), "empty-")));
    expect((await fetch(`${url}/ready`)).status).toBe(503);
  });

  it("serves the dashboard, fingerprinted assets cached for good, any other path as the app", async () => {
    const { url } = await start(undefined);
    const index = await fetch(`${url}/`);
    expect(await index.text()).toContain("<title>Sophia AI</title>");
    expect(index.headers.get("cache-control")).toBe("no-cache");
    expect(index.headers.get("content-security-policy")).toContain("default-src 'self'");
    const asset = await fetch(`${url}/assets/index-abc123.js`);
    expect(asset.headers.get("cache-control")).toContain("immutable");
    expect(await (await fetch(`${url}/services/memory`)).text()).toContain("<title>Sophia AI</title>");
    expect((await fetch(`${url}/`, { method: "POST" })).status).toBe(405);
  });

  it("proxies /api to the orchestrator unchanged, without hop-by-hop headers", async () => {
    const seen: { method?: string; url?: string; headers: http.IncomingHttpHeaders; body: string }[] = [];
    const orchestrator = await listen((request, response) => {
      let body = "";
      request.on("data", (chunk) => (body += chunk));
      request.on("end", () => {
        seen.push({ method: request.method, url: request.url, headers: request.headers, body });
        response.writeHead(201, { "content-type": "application/json", "x-upstream": "yes" });
        response.end(JSON.stringify({ ok: true }));
      });
    });
    const { url } = await start(orchestrator);
    const answer = await fetch(`${url}/api/memory/a%20b?x=1`, {
      method: "PUT",
      headers: { "content-type": "application/json", "x-request-id": "r1" },
      body: JSON.stringify({ value: "v" }),
    });
    expect(answer.status).toBe(201);
    expect(answer.headers.get("x-upstream")).toBe("yes");
    expect(await answer.json()).toEqual({ ok: true });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: "PUT", url: "/api/memory/a%20b?x=1", body: '{"value":"v"}' });
    expect(seen[0].headers["x-request-id"]).toBe("r1");
    expect(seen[0].headers.host).toBe(new URL(orchestrator).host);
  });

  it("answers 503 without an orchestrator and 502 when it is down", async () => {
    expect((await fetch(`${(await start(undefined)).url}/api/status`)).status).toBe(503);
    const closed = await listen(() => undefined);
    await new Promise((done) => servers.pop()?.close(done));
    const answer = await fetch(`${(await start(closed)).url}/api/status`);
    expect(answer.status).toBe(502);
    expect(((await answer.json()) as { detail: string }).detail).toMatch(/^orchestrator: /);
  });

  it("counts requests by route, never by raw path, and logs each as a JSON line", async () => {
    const { url, metrics, lines } = await start(undefined);
    await fetch(`${url}/health`);
    await fetch(`${url}/whatever/${Math.floor(Math.random() * 1e6)}`);
    await fetch(`${url}/api/status`);
    await new Promise((done) => setTimeout(done, 50));
    const text = await metrics.registry.metrics();
    expect(text).toContain('http_requests_total{method="GET",route="/health",status="200"} 1');
    expect(text).toContain('http_requests_total{method="GET",route="/",status="200"} 1');
    expect(text).toContain('http_requests_total{method="GET",route="/api",status="503"} 1');
    expect(text).toContain('http_request_duration_seconds_count{method="GET",route="/health"} 1');
    expect(text).toContain("http_requests_in_flight 0");
    expect(text).not.toContain("whatever");
    const health = lines.find((line) => line.path === "/health");
    expect(health).toMatchObject({ level: "INFO", logger: "server", service: "frontend", message: "GET /health 200", trace_id: "", span_id: "" });
    expect(typeof health?.timestamp).toBe("string");
  });

  it("labels routes from a fixed set", () => {
    expect(["/health", "/ready", "/api", "/api/memory/k", "/apix", "/", "/x/y"].map(routeOf)).toEqual([
      "/health",
      "/ready",
      "/api",
      "/api",
      "/",
      "/",
      "/",
    ]);
  });
});
