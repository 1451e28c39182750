// `k6/execution` for the compat runner (the fields the weft scripts read, and a few more).
import { parentPort, workerData } from 'node:worker_threads';

const d = workerData || {};

export default {
  vu: {
    get idInTest() {
      return d.vu || 0;
    },
    get idInInstance() {
      return d.vu || 0;
    },
    get iterationInScenario() {
      return globalThis.__ITER || 0;
    },
    get iterationInInstance() {
      return globalThis.__ITER || 0;
    },
  },
  scenario: {
    get name() {
      return d.scenario || '';
    },
    get executor() {
      return d.executor || '';
    },
    get startTime() {
      return d.startTime || 0;
    },
  },
  instance: {
    get vusInitialized() {
      return d.vus || 0;
    },
  },
  test: {
    abort(reason) {
      if (parentPort) parentPort.postMessage({ kind: 'abort', reason: String(reason || '') });
      throw new Error(`test aborted: ${reason || ''}`);
    },
    get options() {
      return d.options || {};
    },
  },
};
