// `k6` for the compat runner: check, sleep, fail, group.
import { checked } from './state.mjs';

export function check(value, sets, _tags) {
  let all = true;
  for (const name of Object.keys(sets)) {
    const f = sets[name];
    const ok = !!(typeof f === 'function' ? f(value) : f);
    checked(name, ok);
    if (!ok) all = false;
  }
  return all;
}

const cell = new Int32Array(new SharedArrayBuffer(4));

export function sleep(seconds) {
  Atomics.wait(cell, 0, 0, Math.max(0, Number(seconds) * 1000));
}

export function fail(message) {
  throw new Error(message);
}

export function group(_name, fn) {
  return fn();
}

export default { check, sleep, fail, group };
