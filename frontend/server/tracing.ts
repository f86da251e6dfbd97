// Traces, only when OTEL_EXPORTER_OTLP_ENDPOINT is set: OTLP/gRPC, with the HTTP server and the
// proxy's calls to the orchestrator instrumented (the trace context goes upstream with them).
// Imported first by main.ts: node:http must be instrumented before anything loads it.
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { registerInstrumentations } from "@opentelemetry/instrumentation";
import { HttpInstrumentation } from "@opentelemetry/instrumentation-http";
import { detectResources, envDetector } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";

// Probes would drown the traces: they are counted in the metrics, not traced.
const UNTRACED = new Set(["/health", "/ready"]);

export let tracerProvider: NodeTracerProvider | undefined;

if (process.env.OTEL_EXPORTER_OTLP_ENDPOINT) {
  tracerProvider = new NodeTracerProvider({
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, as the infrastructure sets them.
    resource: detectResources({ detectors: [envDetector] }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  tracerProvider.register();
  registerInstrumentations({
    instrumentations: [
      new HttpInstrumentation({ ignoreIncomingRequestHook: (request) => UNTRACED.has((request.url ?? "").split("?")[0]) }),
    ],
  });
}
