// JSON logs on stdout, one object per line: timestamp, level, logger, message, service, trace_id, span_id.
import { trace } from "@opentelemetry/api";
import { type DestinationStream, type Logger, destination, pino } from "pino";

export function spanIds(): { trace_id: string; span_id: string } {
  const context = trace.getActiveSpan()?.spanContext();
  return context && trace.isSpanContextValid(context)
    ? { trace_id: context.traceId, span_id: context.spanId }
    : { trace_id: "", span_id: "" };
}

export function createLogger(service: string, sink?: DestinationStream): Logger {
  return pino(
    {
      messageKey: "message",
      base: { service, logger: "server", pid: process.pid },
      timestamp: () => `,"timestamp":"${new Date().toISOString()}"`,
      formatters: { level: (label) => ({ level: label.toUpperCase() }) },
      mixin: spanIds,
    },
    sink ?? destination({ sync: true }),
  );
}
