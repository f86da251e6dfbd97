import { describe, expect, it } from "vitest";

import { ApiError, fetchStatus, probeL1 } from "./api";
import { STATUS, fakeOrchestrator, steppingClock } from "./testing";

describe("fetchStatus", () => {
  it("returns the orchestrator's status and how long it took", async () => {
    const { status, latencyMs } = await fetchStatus(fakeOrchestrator().fetcher, steppingClock(5));
    expect(status).toEqual(STATUS);
    expect(latencyMs).toBe(5);
  });

  it("fails on an HTTP error", async () => {
    await expect(fetchStatus(fakeOrchestrator(502).fetcher, steppingClock(1))).rejects.toThrow("GET /api/status: HTTP 502");
  });

  it("fails on an answer that is not a status", async () => {
    const broken = { ...STATUS, dependencies: [{ name: "memory" }] } as never;
    await expect(fetchStatus(fakeOrchestrator(broken).fetcher, steppingClock(1))).rejects.toBeInstanceOf(ApiError);
    const withoutReadiness: Partial<typeof STATUS> = { ...STATUS };
    delete withoutReadiness.ready;
    await expect(fetchStatus(fakeOrchestrator(withoutReadiness as never).fetcher, steppingClock(1))).rejects.toBeInstanceOf(ApiError);
  });
});

describe("probeL1", () => {
  it("times a write and a read of the probe key, then deletes it", async () => {
    const fake = fakeOrchestrator();
    const probe = await probeL1(fake.fetcher, steppingClock(3), "probe key/1");
    expect(probe).toEqual({ putMs: 3, getMs: 3 });
    const path = "/api/memory/probe%20key%2F1";
    expect(fake.calls).toEqual([`PUT ${path}`, `GET ${path}`, `DELETE ${path}`]);
    expect(fake.memory.size).toBe(0);
  });

  it("fails when the value read back differs", async () => {
    await expect(probeL1(fakeOrchestrator(STATUS, true).fetcher, steppingClock(1), "k")).rejects.toThrow("read back something other");
  });
});
