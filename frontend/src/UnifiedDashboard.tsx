import { useCallback, useEffect, useState } from "react";

import { type Clock, type Dependency, type Fetcher, type L1Probe, fetchStatus, probeL1 } from "./api";

interface Props {
  fetcher?: Fetcher;
  now?: Clock;
  /** How often to refresh, in milliseconds (0: only once). */
  refreshMs?: number;
  /** The L1 probe's key; one per page load by default. */
  probeKey?: string;
}

type Loaded<T> = { state: "loading" } | { state: "ok"; value: T } | { state: "error"; message: string };

interface Overview {
  environment: string;
  services: Dependency[];
}

const defaultFetcher: Fetcher = (input, init) => fetch(input, init);
const defaultClock: Clock = () => performance.now();

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function Flag({ ok, yes, no }: { ok: boolean; yes: string; no: string }) {
  return <span className={ok ? "flag ok" : "flag down"}>{ok ? yes : no}</span>;
}

/** Sophia AI at a glance: every service's health and readiness, as the orchestrator sees them,
 * and the latency of the fast (L1) memory, as this page observes it. */
export function UnifiedDashboard({
  fetcher = defaultFetcher,
  now = defaultClock,
  refreshMs = 10_000,
  probeKey = `dashboard-probe-${Math.random().toString(36).slice(2, 10)}`,
}: Props) {
  const [overview, setOverview] = useState<Loaded<Overview>>({ state: "loading" });
  const [l1, setL1] = useState<Loaded<L1Probe>>({ state: "loading" });
  const [updated, setUpdated] = useState<Date | null>(null);

  const refresh = useCallback(async () => {
    try {
      const { status, latencyMs } = await fetchStatus(fetcher, now);
      const orchestrator: Dependency = {
        name: status.service,
        url: "/api",
        healthy: true,
        ready: status.ready,
        latency_ms: latencyMs,
      };
      setOverview({ state: "ok", value: { environment: status.environment, services: [orchestrator, ...status.dependencies] } });
    } catch (error) {
      setOverview({ state: "error", message: message(error) });
    }
    try {
      setL1({ state: "ok", value: await probeL1(fetcher, now, probeKey) });
    } catch (error) {
      setL1({ state: "error", message: message(error) });
    }
    setUpdated(new Date());
  }, [fetcher, now, probeKey]);

  useEffect(() => {
    void refresh();
    if (refreshMs <= 0) {
      return undefined;
    }
    const timer = setInterval(() => void refresh(), refreshMs);
    return () => clearInterval(timer);
  }, [refresh, refreshMs]);

  const services = overview.state === "ok" ? overview.value.services : [];
  const ready = services.filter((s) => s.healthy && s.ready).length;

  return (
    <main className="dashboard">
      <header>
        <h1>Sophia AI</h1>
        {overview.state === "ok" && (
          <p className="summary" data-testid="summary">
            <span className="environment">{overview.value.environment}</span> {ready} of {services.length} services ready
          </p>
        )}
      </header>

      <section aria-label="Services">
        <h2>Services</h2>
        {overview.state === "loading" && <p>Loading…</p>}
        {overview.state === "error" && (
          <p role="alert" className="error">
            The orchestrator did not answer ({overview.message}).
          </p>
        )}
        {overview.state === "ok" && (
          <table>
            <thead>
              <tr>
                <th>Service</th>
                <th>Health</th>
                <th>Ready</th>
                <th>Latency</th>
                <th>Address</th>
              </tr>
            </thead>
            <tbody>
              {services.map((s) => (
                <tr key={s.name} data-testid={`service-${s.name}`}>
                  <td>{s.name}</td>
                  <td>
                    <Flag ok={s.healthy} yes="healthy" no="down" />
                  </td>
                  <td>
                    <Flag ok={s.ready} yes="ready" no="not ready" />
                  </td>
                  <td>{s.latency_ms.toFixed(1)} ms</td>
                  <td className="address">{s.url}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>

      <section aria-label="L1 memory">
        <h2>L1 memory latency</h2>
        {l1.state === "loading" && <p>Measuring…</p>}
        {l1.state === "error" && (
          <p role="alert" className="error">
            The L1 probe failed ({l1.message}).
          </p>
        )}
        {l1.state === "ok" && (
          <p className="latency" data-testid="l1-latency">
            write <strong>{l1.value.putMs.toFixed(1)} ms</strong> · read <strong>{l1.value.getMs.toFixed(1)} ms</strong>
          </p>
        )}
        <p className="hint">A key written and read back through the orchestrator and the memory service, as seen from this page.</p>
      </section>

      {updated && <footer>Updated {updated.toLocaleTimeString()}</footer>}
    </main>
  );
}
