// A fake orchestrator for the unit tests: answers like the platform contract's API.
import type { Fetcher, Status } from "./api";

export const STATUS: Status = {
  service: "orchestrator",
  environment: "dev",
  ready: true,
  dependencies: [
    { name: "memory", url: "http://memory.sophia-dev.svc:8001", healthy: true, ready: true, latency_ms: 2.5 },
    { name: "hubspot", url: "http://mcp-hubspot.sophia-dev.svc:8080", healthy: true, ready: false, latency_ms: 4 },
    { name: "slack", url: "http://mcp-slack.sophia-dev.svc:8080", healthy: false, ready: false, latency_ms: 2000 },
  ],
};

export interface FakeOrchestrator {
  fetcher: Fetcher;
  calls: string[];
  memory: Map<string, string>;
}

/** `status`: the /api/status answer (a number: that HTTP status); `corrupt`: L1 reads answer another value. */
export function fakeOrchestrator(status: Status | number = STATUS, corrupt = false): FakeOrchestrator {
  const calls: string[] = [];
  const memory = new Map<string, string>();
  const json = (body: unknown, code = 200) => new Response(JSON.stringify(body), { status: code, headers: { "content-type": "application/json" } });
  const fetcher: Fetcher = async (input, init) => {
    const method = init?.method ?? "GET";
    calls.push(`${method} ${input}`);
    if (input === "/api/status") {
      return typeof status === "number" ? json({ detail: "down" }, status) : json(status);
    }
    const key = decodeURIComponent(input.replace("/api/memory/", ""));
    if (method === "PUT") {
      memory.set(key, (JSON.parse(String(init?.body)) as { value: string }).value);
      return new Response(null, { status: 204 });
    }
    if (method === "DELETE") {
      memory.delete(key);
      return new Response(null, { status: 204 });
    }
    const value = memory.get(key);
    return value === undefined ? json({ detail: "not found" }, 404) : json({ key, value: corrupt ? "other" : value });
  };
  return { fetcher, calls, memory };
}

/** A clock that advances by `step` milliseconds at every reading. */
export function steppingClock(step: number): () => number {
  let time = 0;
  return () => (time += step);
}
