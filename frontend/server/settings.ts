// The platform contract's environment, as the infrastructure sets it on the container.
import { readFileSync } from "node:fs";
import { join } from "node:path";

export interface Settings {
  service: string;
  port: number;
  metricsPort: number | undefined;
  workers: number;
  orchestratorUrl: string | undefined;
  environment: string;
  /** The built dashboard (vite build). */
  root: string;
}

const project = join(__dirname, "..");

function integer(name: string, value: string | undefined, fallback: number | undefined, max: number): number | undefined {
  if (value === undefined || value === "") {
    return fallback;
  }
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1 || number > max) {
    throw new Error(`${name} must be a whole number from 1 to ${max}, got ${JSON.stringify(value)}`);
  }
  return number;
}

export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const manifest = JSON.parse(readFileSync(join(project, "package.json"), "utf8")) as { name: string; config: { port: string } };
  return {
    service: manifest.name.replace(/^sophia-/, ""),
    port: integer("PORT", env.PORT, Number(manifest.config.port), 65535) as number,
    metricsPort: integer("METRICS_PORT", env.METRICS_PORT, undefined, 65535),
    workers: integer("WEB_CONCURRENCY", env.WEB_CONCURRENCY, 1, 64) as number,
    orchestratorUrl: env.ORCHESTRATOR_URL || undefined,
    environment: env.SOPHIA_ENVIRONMENT || "dev",
    root: join(project, "dist"),
  };
}
