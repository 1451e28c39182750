// One VU (or the init, setup or teardown stage) of the compat runner, in its own
// worker thread: a runtime of its own, as each k6 VU has.
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';

register('./hooks.mjs', import.meta.url, { data: { root: workerData.root } });

const { flush, sample, take } = await import('./k6/state.mjs');

globalThis.__ENV = workerData.env;
globalThis.__VU = workerData.vu || 0;
globalThis.__ITER = 0;

function plain(value) {
  return value === undefined ? null : JSON.parse(JSON.stringify(value));
}

async function main() {
  const script = await import(pathToFileURL(workerData.script).href);
  const timer = setInterval(flush, 1000);
  timer.unref();
  try {
    switch (workerData.mode) {
      case 'options':
        return { options: plain(script.options || {}), setup: typeof script.setup === 'function', teardown: typeof script.teardown === 'function' };
      case 'setup':
        return { data: plain(await script.setup()) };
      case 'teardown':
        await script.teardown(workerData.data);
        return {};
      case 'vu': {
        const fn = script[workerData.exec || 'default'];
        if (typeof fn !== 'function') throw new Error(`the script exports no function ${workerData.exec || 'default'}`);
        let failed = 0;
        for (let i = 0; i < workerData.iterations; i++) {
          globalThis.__ITER = i;
          const t0 = Date.now();
          try {
            await fn(workerData.data === null ? undefined : workerData.data);
          } catch (e) {
            failed++;
            console.error(`ERRO[vu ${workerData.vu}] ${e && e.stack ? e.stack : e}`);
          }
          sample('iterations', 'counter', 1);
          sample('iteration_duration', 'trend', Date.now() - t0, true);
        }
        return { failed };
      }
      default:
        throw new Error(`unknown mode ${workerData.mode}`);
    }
  } finally {
    clearInterval(timer);
  }
}

try {
  const result = await main();
  parentPort.postMessage({ kind: 'done', result, samples: take() });
} catch (e) {
  parentPort.postMessage({ kind: 'failed', error: e && e.stack ? e.stack : String(e), samples: take() });
}
