import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// `npm run dev` proxies /api to the orchestrator as the server (and the ingress) do.
export default defineConfig({
  plugins: [react()],
  server: {
    proxy: process.env.ORCHESTRATOR_URL ? { "/api": process.env.ORCHESTRATOR_URL } : undefined,
  },
  build: { outDir: "dist", emptyOutDir: true },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}", "server/**/*.test.ts"],
    restoreMocks: true,
  },
});
