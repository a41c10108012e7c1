// Runs the wasm build of tools/wasm-bench under Node and prints a Markdown table:
//   node tools/wasm-bench/run.mjs <pkg-dir> [strategy,...] [contextual-strategy,...]
// <pkg-dir> is wasm-bindgen's --target nodejs output (scripts/bench.sh makes it). The strategies
// of the third argument get a second table: the contextual workload (one of 16 request contexts
// per select and update).
import { createRequire } from "node:module";
import path from "node:path";

const [pkgDir, list, contextual] = process.argv.slice(2);
if (!pkgDir) {
  console.error("usage: node run.mjs <pkg-dir> [strategy,...]");
  process.exit(2);
}
const require = createRequire(import.meta.url);
const bench = require(path.resolve(pkgDir, "magnetar_wasm_bench.js"));
const names = list ? list.split(",") : bench.strategies();
const contextualNames = contextual ? contextual.split(",") : [];
const arms = [3, 10, 100];
const ITERATIONS = 200_000;

console.log(`| strategy | ${arms.map((a) => `${a} downstreams (ns)`).join(" | ")} |`);
console.log(`|---|${arms.map(() => "---").join("|")}|`);
function rows(list, timed) {
  for (const name of list) {
    // Best of three runs: the least disturbed by the machine's other work.
    const cells = arms.map((n) => {
      let best = Infinity;
      for (let run = 0; run < 3; run++) best = Math.min(best, timed(name, n, BigInt(ITERATIONS)));
      return best.toFixed(0);
    });
    console.log(`| ${name} | ${cells.join(" | ")} |`);
  }
}
rows(names, bench.benchSelectUpdate);
if (contextualNames.length > 0) {
  console.log();
  console.log(`| contextual strategy | ${arms.map((a) => `${a} downstreams (ns)`).join(" | ")} |`);
  console.log(`|---|${arms.map(() => "---").join("|")}|`);
  rows(contextualNames, bench.benchContextualSelectUpdate);
}
