// `k6/timers` for the compat runner: Node's timers.
export { setTimeout, clearTimeout, setInterval, clearInterval } from 'node:timers';
