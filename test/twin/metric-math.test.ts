// Metric math as CloudWatch documents it, on the expressions the grid's scaling uses.
import { evaluateExpression, referencedIds } from '../../twin/scaling/metric-math';

const series = (data: Record<string, (number | undefined)[]>) => (id: string) => {
  const s = data[id];
  if (!s) throw new Error(`no ${id}`);
  return s;
};

describe('metric math over time series', () => {
  it('adds series point by point, a missing point counting as 0 next to a present one', () => {
    const look = series({ a: [1, undefined, undefined], b: [2, 3, undefined] });
    expect(evaluateExpression('a+b', 3, look)).toEqual([3, 3, undefined]);
  });

  it('drops a point divided by zero', () => {
    const look = series({ backlog: [10, 10], running: [2, 0] });
    expect(evaluateExpression('backlog / running', 2, look)).toEqual([5, undefined]);
  });

  it('gives IF(cond, ts, scalar) the documented points: the series, 0 where it is missing, the scalar when false', () => {
    const look = series({ running: [2, 0, 1, undefined], backlog: [8, 8, undefined, 8] });
    expect(evaluateExpression('IF(running > 0, backlog / running, 0)', 4, look)).toEqual([4, 0, 0, undefined]);
  });

  it('fills a series over the whole range, even one without any data point', () => {
    const look = series({ running: [undefined, undefined, undefined] });
    expect(evaluateExpression('FILL(running, 0)', 3, look)).toEqual([0, 0, 0]);
  });

  it('takes MAX of an array point by point, a scalar in it counting at every point', () => {
    const look = series({ running: [0, 3, undefined], backlog: [6, 6, 6] });
    expect(evaluateExpression('backlog / MAX([FILL(running, 0), 1])', 3, look)).toEqual([6, 2, 6]);
  });

  it('combines comparisons with AND and OR into 0/1 series', () => {
    const look = series({ running: [0, 1, 0], visible: [5, 5, 0] });
    expect(evaluateExpression('IF(FILL(running, 0) < 1 AND (visible) > 0, 1, 0)', 3, look)).toEqual([1, 0, 0]);
    expect(evaluateExpression('running >= 1 || visible > 0', 3, look)).toEqual([1, 1, 0]);
  });

  it('reduces one series to a scalar with SUM, MIN and MAX', () => {
    const look = series({ m: [1, 4, undefined, 2] });
    expect(evaluateExpression('m - MIN(m)', 4, look)).toEqual([0, 3, undefined, 1]);
    expect(evaluateExpression('TIME_SERIES(SUM(m))', 2, look)).toEqual([7, 7]);
    expect(evaluateExpression('m / MAX(m) * 100', 4, look)).toEqual([25, 100, undefined, 50]);
  });

  it('names the metrics an expression reads', () => {
    expect(referencedIds('IF(running > 0, (visible0+inflight0) / running, 0)').sort()).toEqual([
      'inflight0',
      'running',
      'visible0',
    ]);
  });

  it('rejects a function it does not model, naming it', () => {
    expect(() => evaluateExpression('ANOMALY_DETECTION_BAND(m)', 1, series({ m: [1] }))).toThrow(
      /ANOMALY_DETECTION_BAND is not modelled/,
    );
  });
});
