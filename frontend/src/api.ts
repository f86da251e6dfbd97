// The orchestrator's API as the dashboard uses it (the platform contract): GET /api/status,
// and PUT/GET/DELETE /api/memory/{key}, which go through the memory service to Redis (L1).

export interface Dependency {
  name: string;
  url: string;
  healthy: boolean;
  ready: boolean;
  latency_ms: number;
}

export interface Status {
  service: string;
  environment: string;
  /** The orchestrator's own readiness, as its /ready decides it. */
  ready: boolean;
  dependencies: Dependency[];
}

export type Fetcher = (input: string, init?: RequestInit) => Promise<Response>;
export type Clock = () => number;

export class ApiError extends Error {}

function isDependency(value: unknown): value is Dependency {
  const d = value as Dependency;
  return (
    typeof d === "object" &&
    d !== null &&
    typeof d.name === "string" &&
    typeof d.url === "string" &&
    typeof d.healthy === "boolean" &&
    typeof d.ready === "boolean" &&
    typeof d.latency_ms === "number"
  );
}

function isStatus(value: unknown): value is Status {
  const s = value as Status;
  return (
    typeof s === "object" &&
    s !== null &&
    typeof s.service === "string" &&
    typeof s.environment === "string" &&
    typeof s.ready === "boolean" &&
    Array.isArray(s.dependencies) &&
    s.dependencies.every(isDependency)
  );
}

async function expect(response: Response, what: string, ok: number[]): Promise<Response> {
  if (!ok.includes(response.status)) {
    throw new ApiError(`${what}: HTTP ${response.status}`);
  }
  return response;
}

/** The orchestrator's view of its dependencies, and how long the orchestrator took to answer. */
export async function fetchStatus(fetcher: Fetcher, now: Clock): Promise<{ status: Status; latencyMs: number }> {
  const started = now();
  const response = await expect(await fetcher("/api/status", { headers: { accept: "application/json" } }), "GET /api/status", [200]);
  const body: unknown = await response.json();
  const latencyMs = now() - started;
  if (!isStatus(body)) {
    throw new ApiError("GET /api/status: not a status answer");
  }
  return { status: body, latencyMs };
}

export interface L1Probe {
  putMs: number;
  getMs: number;
}

/** Time a write and a read of `key` through the orchestrator into L1 memory (then delete it). */
export async function probeL1(fetcher: Fetcher, now: Clock, key: string): Promise<L1Probe> {
  const path = `/api/memory/${encodeURIComponent(key)}`;
  const value = `probe-${now()}`;
  const putStarted = now();
  await expect(
    await fetcher(path, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ value, ttl_seconds: 60 }),
    }),
    `PUT ${path}`,
    [200, 201, 204],
  );
  const getStarted = now();
  const response = await expect(await fetcher(path), `GET ${path}`, [200]);
  const body = (await response.json()) as { value?: unknown };
  const getMs = now() - getStarted;
  if (body.value !== value) {
    throw new ApiError(`GET ${path}: read back something other than what was written`);
  }
  await fetcher(path, { method: "DELETE" });
  return { putMs: getStarted - putStarted, getMs };
}
