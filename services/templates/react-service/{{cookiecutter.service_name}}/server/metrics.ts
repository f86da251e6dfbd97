// Prometheus metrics of the platform contract. Each worker process counts its own requests;
// the primary process sums them (prom-client's cluster aggregation) on METRICS_PORT.
import { Counter, Gauge, Histogram, Registry } from "prom-client";

export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: "http_requests_total",
    help: "HTTP requests answered.",
    labelNames: ["method", "route", "status"] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: "http_request_duration_seconds",
    help: "Time to answer an HTTP request.",
    labelNames: ["method", "route"] as const,
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: "http_requests_in_flight",
    help: "HTTP requests being answered.",
    registers: [this.registry],
  });
}
