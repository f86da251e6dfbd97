import { cleanup, render, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import { UnifiedDashboard } from "./UnifiedDashboard";
import { STATUS, fakeOrchestrator, steppingClock } from "./testing";

afterEach(cleanup);

describe("UnifiedDashboard", () => {
  it("shows every service's health and readiness and the L1 latency", async () => {
    render(<UnifiedDashboard fetcher={fakeOrchestrator().fetcher} now={steppingClock(2)} refreshMs={0} probeKey="probe" />);
    const memory = await screen.findByTestId("service-memory");
    expect(within(memory).getByText("healthy")).toBeTruthy();
    expect(within(memory).getByText("ready")).toBeTruthy();
    expect(within(memory).getByText("2.5 ms")).toBeTruthy();
    const hubspot = screen.getByTestId("service-hubspot");
    expect(within(hubspot).getByText("healthy")).toBeTruthy();
    expect(within(hubspot).getByText("not ready")).toBeTruthy();
    expect(within(screen.getByTestId("service-slack")).getByText("down")).toBeTruthy();
    expect(within(screen.getByTestId("service-orchestrator")).getByText("ready")).toBeTruthy();
    expect(screen.getByTestId("summary").textContent).toBe(`dev 2 of ${STATUS.dependencies.length + 1} services ready`);
    expect((await screen.findByTestId("l1-latency")).textContent).toBe("write 2.0 ms · read 2.0 ms");
  });

  it("shows the orchestrator not ready when its own readiness fails", async () => {
    render(<UnifiedDashboard fetcher={fakeOrchestrator({ ...STATUS, ready: false }).fetcher} now={steppingClock(1)} refreshMs={0} />);
    const orchestrator = await screen.findByTestId("service-orchestrator");
    expect(within(orchestrator).getByText("healthy")).toBeTruthy();
    expect(within(orchestrator).getByText("not ready")).toBeTruthy();
    expect(screen.getByTestId("summary").textContent).toBe(`dev 1 of ${STATUS.dependencies.length + 1} services ready`);
  });

  it("says so when the orchestrator does not answer", async () => {
    render(<UnifiedDashboard fetcher={fakeOrchestrator(503).fetcher} now={steppingClock(1)} refreshMs={0} />);
    const alerts = await screen.findAllByRole("alert");
    expect(alerts[0].textContent).toContain("The orchestrator did not answer (GET /api/status: HTTP 503)");
    expect(screen.queryByRole("table")).toBeNull();
  });

  it("reports an L1 probe that reads back the wrong value", async () => {
    render(<UnifiedDashboard fetcher={fakeOrchestrator(STATUS, true).fetcher} now={steppingClock(1)} refreshMs={0} />);
    expect((await screen.findByRole("alert")).textContent).toContain("The L1 probe failed");
    expect(screen.queryByTestId("l1-latency")).toBeNull();
  });
});
