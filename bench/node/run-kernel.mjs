// Runs a benchmark kernel (a Wasm module with no imports exporting run) under Node.js:
// one warm-up call, then the best of three timed calls. Prints "<result> <milliseconds>".
import { readFileSync } from 'node:fs';

const [file, n] = process.argv.slice(2);
const { instance } = await WebAssembly.instantiate(readFileSync(file));
const run = instance.exports.run;
let result = run(Number(n)) >>> 0;
let best = Infinity;
for (let i = 0; i < 3; i++) {
  const start = process.hrtime.bigint();
  result = run(Number(n)) >>> 0;
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  best = Math.min(best, ms);
}
console.log(`${result} ${best.toFixed(3)}`);
