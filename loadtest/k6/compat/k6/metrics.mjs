// `k6/metrics` for the compat runner.
import { declare, sample } from './state.mjs';

class Metric {
  constructor(name, type, isTime) {
    if (!/^[a-zA-Z_][a-zA-Z0-9_]{0,127}$/.test(name)) throw new Error(`invalid metric name ${name}`);
    this.name = name;
    this.type = type;
    this.isTime = !!isTime;
    declare(name, type, this.isTime);
  }

  add(value, _tags) {
    sample(this.name, this.type, value, this.isTime);
    return true;
  }
}

export class Counter extends Metric {
  constructor(name) {
    super(name, 'counter', false);
  }
}

export class Trend extends Metric {
  constructor(name, isTime) {
    super(name, 'trend', isTime);
  }
}

export class Rate extends Metric {
  constructor(name) {
    super(name, 'rate', false);
  }
}

export class Gauge extends Metric {
  constructor(name, isTime) {
    super(name, 'gauge', isTime);
  }
}

export default { Counter, Trend, Rate, Gauge };
