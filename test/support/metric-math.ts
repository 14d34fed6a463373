// Test helper: evaluates a CloudWatch metric-math expression at one instant, for the subset our scaling and alarms use.
//
// Values are numbers or `undefined` (the metric has no datapoint then). As in CloudWatch, arithmetic on a missing
// value gives no value, `FILL(m, v)` stands in `v` for a missing value, `IF(c, a, b)` picks per datapoint and a
// division by zero gives no value. Functions: IF, FILL, MAX, MIN, SUM, ABS; operators + - * / < <= > >= == != AND OR.

export type Datapoint = number | undefined;

type Token = { kind: 'num'; value: number } | { kind: 'id'; value: string } | { kind: 'op'; value: string };

function tokenize(expression: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s*(?:(\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(<=|>=|==|!=|[-+*/()<>,[\]]))/y;
  let rest = expression.trim();
  while (rest.length > 0) {
    re.lastIndex = 0;
    const m = re.exec(rest);
    if (!m) throw new Error(`metric math: cannot read "${rest}" in "${expression}"`);
    if (m[1] !== undefined) tokens.push({ kind: 'num', value: Number(m[1]) });
    else if (m[2] !== undefined) tokens.push({ kind: 'id', value: m[2] });
    else tokens.push({ kind: 'op', value: m[3]! });
    rest = rest.slice(m[0].length).trimStart();
  }
  return tokens;
}

/** Evaluates `expression` with `values` for its metric ids; throws on an id it does not know. */
export function evaluateMetricMath(expression: string, values: Readonly<Record<string, Datapoint>>): Datapoint {
  const tokens = tokenize(expression);
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const take = (value?: string): Token => {
    const t = tokens[pos++];
    if (!t || (value !== undefined && t.value !== value)) {
      throw new Error(`metric math: expected ${value ?? 'a token'} at ${pos} in "${expression}"`);
    }
    return t;
  };
  const isOp = (value: string): boolean => peek()?.kind === 'op' && peek()?.value === value;
  const isWord = (value: string): boolean => peek()?.kind === 'id' && peek()?.value === value;
  const lift = (a: Datapoint, b: Datapoint, f: (x: number, y: number) => Datapoint): Datapoint =>
    a === undefined || b === undefined ? undefined : f(a, b);

  const list = (): Datapoint[] => {
    const items: Datapoint[] = [];
    if (isOp('[')) {
      take('[');
      items.push(orExpr());
      while (isOp(',')) {
        take(',');
        items.push(orExpr());
      }
      take(']');
    } else {
      items.push(orExpr());
    }
    return items;
  };
  const call = (name: string): Datapoint => {
    take('(');
    let result: Datapoint;
    if (name === 'IF') {
      const c = orExpr();
      take(',');
      const a = orExpr();
      take(',');
      const b = orExpr();
      result = c === undefined ? undefined : c !== 0 ? a : b;
    } else if (name === 'FILL') {
      const m = orExpr();
      take(',');
      const v = orExpr();
      result = m ?? v;
    } else if (['MAX', 'MIN', 'SUM'].includes(name)) {
      const defined = list().filter((v): v is number => v !== undefined);
      if (defined.length === 0) result = undefined;
      else if (name === 'MAX') result = Math.max(...defined);
      else if (name === 'MIN') result = Math.min(...defined);
      else result = defined.reduce((s, v) => s + v, 0);
    } else if (name === 'ABS') {
      const v = orExpr();
      result = v === undefined ? undefined : Math.abs(v);
    } else {
      throw new Error(`metric math: function ${name} is not supported by this evaluator`);
    }
    take(')');
    return result;
  };
  const primary = (): Datapoint => {
    const t = take();
    if (t.kind === 'num') return t.value;
    if (t.kind === 'op' && t.value === '(') {
      const v = orExpr();
      take(')');
      return v;
    }
    if (t.kind === 'op' && t.value === '-') {
      const v = primary();
      return v === undefined ? undefined : -v;
    }
    if (t.kind === 'id') {
      if (isOp('(')) return call(t.value);
      if (!(t.value in values)) throw new Error(`metric math: no value given for "${t.value}" in "${expression}"`);
      return values[t.value];
    }
    throw new Error(`metric math: unexpected "${t.value}" in "${expression}"`);
  };
  const term = (): Datapoint => {
    let v = primary();
    while (isOp('*') || isOp('/')) {
      const op = take().value;
      const r = primary();
      v = lift(v, r, (x, y) => (op === '*' ? x * y : y === 0 ? undefined : x / y));
    }
    return v;
  };
  const sum = (): Datapoint => {
    let v = term();
    while (isOp('+') || isOp('-')) {
      const op = take().value;
      const r = term();
      v = lift(v, r, (x, y) => (op === '+' ? x + y : x - y));
    }
    return v;
  };
  const comparison = (): Datapoint => {
    const v = sum();
    for (const op of ['<=', '>=', '==', '!=', '<', '>']) {
      if (isOp(op)) {
        take(op);
        const r = sum();
        const compare: Record<string, (x: number, y: number) => boolean> = {
          '<=': (x, y) => x <= y,
          '>=': (x, y) => x >= y,
          '==': (x, y) => x === y,
          '!=': (x, y) => x !== y,
          '<': (x, y) => x < y,
          '>': (x, y) => x > y,
        };
        return lift(v, r, (x, y) => (compare[op]!(x, y) ? 1 : 0));
      }
    }
    return v;
  };
  const andExpr = (): Datapoint => {
    let v = comparison();
    while (isWord('AND')) {
      take('AND');
      const r = comparison();
      v = lift(v, r, (x, y) => (x !== 0 && y !== 0 ? 1 : 0));
    }
    return v;
  };
  function orExpr(): Datapoint {
    let v = andExpr();
    while (isWord('OR')) {
      take('OR');
      const r = andExpr();
      v = lift(v, r, (x, y) => (x !== 0 || y !== 0 ? 1 : 0));
    }
    return v;
  }

  const result = orExpr();
  if (pos !== tokens.length) throw new Error(`metric math: trailing input in "${expression}"`);
  return result;
}
