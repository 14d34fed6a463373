// CloudWatch metric math over aligned time series, as the CloudWatch User Guide ("Using math expressions with
// CloudWatch metrics") documents it: arithmetic treats a missing value as 0 when the other side has one and drops a
// division by zero; comparisons and AND/OR give 0/1, a point missing on one side counting as 0; IF keeps or drops
// points by its documented rules; FILL fills the whole range; MAX/MIN/SUM/AVG of an array work point by point, of one
// series reduce it to a scalar.

/** One value per timestamp of the evaluated range; `undefined` where the series has no data point. */
export type Series = (number | undefined)[];
type Value = { kind: 'scalar'; v: number } | { kind: 'series'; v: Series } | { kind: 'array'; v: Series[] };

export class MetricMathError extends Error {}

type Node =
  | { t: 'num'; v: number }
  | { t: 'id'; name: string }
  | { t: 'str'; v: string }
  | { t: 'call'; fn: string; args: Node[] }
  | { t: 'list'; items: Node[] }
  | { t: 'unary'; op: '-'; arg: Node }
  | { t: 'bin'; op: string; left: Node; right: Node };

const TOKEN = /\s*(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[A-Za-z_][A-Za-z0-9_]*|"[^"]*"|&&|\|\||==|!=|<=|>=|[-+*/^()<>,[\]])/y;

function tokenize(expression: string): string[] {
  const tokens: string[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < expression.length) {
    if (/^\s*$/.test(expression.slice(TOKEN.lastIndex))) break;
    const m = TOKEN.exec(expression);
    if (!m) throw new MetricMathError(`cannot read "${expression.slice(TOKEN.lastIndex)}" in ${expression}`);
    tokens.push(m[1]!);
  }
  return tokens;
}

/** Parses a metric math expression. */
export function parseExpression(expression: string): Node {
  const tokens = tokenize(expression);
  let i = 0;
  const peek = () => tokens[i];
  const take = (expected?: string) => {
    const t = tokens[i++];
    if (t === undefined || (expected !== undefined && t !== expected)) {
      throw new MetricMathError(`expected ${expected ?? 'more'} at token ${i} of ${expression}`);
    }
    return t;
  };
  const binary = (next: () => Node, ops: readonly string[]) => (): Node => {
    let left = next();
    while (peek() !== undefined && ops.includes(peek()!)) {
      const op = take();
      left = { t: 'bin', op: op === '&&' ? 'AND' : op === '||' ? 'OR' : op, left, right: next() };
    }
    return left;
  };
  const primary = (): Node => {
    const t = take();
    if (t === '(') {
      const e = orExpr();
      take(')');
      return e;
    }
    if (t === '[') {
      const items: Node[] = [];
      if (peek() !== ']')
        do items.push(orExpr());
        while (peek() === ',' && take(','));
      take(']');
      return { t: 'list', items };
    }
    if (t === '-') return { t: 'unary', op: '-', arg: unary() };
    if (/^\d/.test(t)) return { t: 'num', v: Number(t) };
    if (t.startsWith('"')) return { t: 'str', v: t.slice(1, -1) };
    if (peek() === '(') {
      take('(');
      const args: Node[] = [];
      if (peek() !== ')')
        do args.push(orExpr());
        while (peek() === ',' && take(','));
      take(')');
      return { t: 'call', fn: t.toUpperCase(), args };
    }
    return { t: 'id', name: t };
  };
  const unary = (): Node => (peek() === '-' ? (take(), { t: 'unary', op: '-', arg: unary() }) : primary());
  const pow = binary(unary, ['^']);
  const mul = binary(pow, ['*', '/']);
  const add = binary(mul, ['+', '-']);
  const cmp = binary(add, ['==', '!=', '<=', '>=', '<', '>']);
  const andExpr = binary(cmp, ['AND', '&&']);
  const orExpr: () => Node = binary(andExpr, ['OR', '||']);
  const root = orExpr();
  if (i !== tokens.length) throw new MetricMathError(`unexpected "${tokens[i]}" in ${expression}`);
  return root;
}

/** The ids an expression reads. */
export function referencedIds(expression: string): string[] {
  const ids = new Set<string>();
  const walk = (n: Node): void => {
    if (n.t === 'id') ids.add(n.name);
    else if (n.t === 'call') n.args.forEach(walk);
    else if (n.t === 'list') n.items.forEach(walk);
    else if (n.t === 'unary') walk(n.arg);
    else if (n.t === 'bin') {
      walk(n.left);
      walk(n.right);
    }
  };
  walk(parseExpression(expression));
  return [...ids];
}

/**
 * Evaluates `expression` over `length` timestamps. `lookup(id)` gives a metric's series or another expression's
 * result; `metricIds` lists the metrics (not expressions) for METRICS().
 */
export function evaluateExpression(
  expression: string,
  length: number,
  lookup: (id: string) => Series,
  metricIds: readonly string[] = [],
): Series {
  const result = evaluate(parseExpression(expression), length, lookup, metricIds);
  if (result.kind === 'series') return result.v;
  if (result.kind === 'scalar') return new Array<number | undefined>(length).fill(result.v);
  throw new MetricMathError(`${expression} gives an array of time series; an alarm or policy needs one`);
}

function evaluate(n: Node, length: number, lookup: (id: string) => Series, metricIds: readonly string[]): Value {
  const ev = (x: Node) => evaluate(x, length, lookup, metricIds);
  switch (n.t) {
    case 'num':
      return { kind: 'scalar', v: n.v };
    case 'str':
      throw new MetricMathError(`a string "${n.v}" is only allowed inside METRICS()`);
    case 'id':
      return { kind: 'series', v: lookup(n.name) };
    case 'list':
      return { kind: 'array', v: n.items.map((item) => asSeries(ev(item), length)) };
    case 'unary':
      return map1(ev(n.arg), (x) => -x);
    case 'bin':
      return binaryOp(n.op, ev(n.left), ev(n.right), length);
    case 'call':
      return call(n.fn, n.args, ev, length, metricIds, lookup);
  }
}

function asSeries(v: Value, length: number): Series {
  if (v.kind === 'series') return v.v;
  if (v.kind === 'scalar') return new Array<number | undefined>(length).fill(v.v);
  throw new MetricMathError('an array of time series where one series is needed');
}

function map1(v: Value, f: (x: number) => number): Value {
  if (v.kind === 'scalar') return { kind: 'scalar', v: f(v.v) };
  if (v.kind === 'series') return { kind: 'series', v: v.v.map((x) => (x === undefined ? undefined : f(x))) };
  return { kind: 'array', v: v.v.map((s) => s.map((x) => (x === undefined ? undefined : f(x)))) };
}

function applyOp(op: string, a: number, b: number): number | undefined {
  switch (op) {
    case '+':
      return a + b;
    case '-':
      return a - b;
    case '*':
      return a * b;
    case '/':
      return b === 0 ? undefined : a / b;
    case '^':
      return a ** b;
    case '==':
      return Number(a === b);
    case '!=':
      return Number(a !== b);
    case '<=':
      return Number(a <= b);
    case '>=':
      return Number(a >= b);
    case '<':
      return Number(a < b);
    case '>':
      return Number(a > b);
    case 'AND':
      return Number(a !== 0 && b !== 0);
    case 'OR':
      return Number(a !== 0 || b !== 0);
    default:
      throw new MetricMathError(`unknown operator ${op}`);
  }
}

function binaryOp(op: string, left: Value, right: Value, length: number): Value {
  if (left.kind === 'scalar' && right.kind === 'scalar') {
    const v = applyOp(op, left.v, right.v);
    if (v === undefined) throw new MetricMathError('division by zero between scalars');
    return { kind: 'scalar', v };
  }
  if (left.kind === 'array' || right.kind === 'array') {
    const lefts = left.kind === 'array' ? left.v : null;
    const rights = right.kind === 'array' ? right.v : null;
    const count = (lefts ?? rights)!.length;
    const out: Series[] = [];
    for (let k = 0; k < count; k++) {
      const l: Value = lefts ? { kind: 'series', v: lefts[k]! } : left;
      const r: Value = rights ? { kind: 'series', v: rights[k]! } : right;
      out.push(asSeries(binaryOp(op, l, r, length), length));
    }
    return { kind: 'array', v: out };
  }
  const out: Series = [];
  for (let i = 0; i < length; i++) {
    const a = left.kind === 'scalar' ? left.v : left.v[i];
    const b = right.kind === 'scalar' ? right.v : right.v[i];
    if (a === undefined && b === undefined) out.push(undefined);
    else if (left.kind === 'series' && right.kind === 'series') out.push(applyOp(op, a ?? 0, b ?? 0));
    else if (a === undefined || b === undefined) out.push(undefined);
    else out.push(applyOp(op, a, b));
  }
  return { kind: 'series', v: out };
}

function call(
  fn: string,
  args: Node[],
  ev: (n: Node) => Value,
  length: number,
  metricIds: readonly string[],
  lookup: (id: string) => Series,
): Value {
  const pointwise = (f: (x: number) => number) => map1(ev(args[0]!), f);
  switch (fn) {
    case 'ABS':
      return pointwise(Math.abs);
    case 'CEIL':
      return pointwise(Math.ceil);
    case 'FLOOR':
      return pointwise(Math.floor);
    case 'TIME_SERIES': {
      const v = ev(args[0]!);
      if (v.kind !== 'scalar') throw new MetricMathError('TIME_SERIES takes a scalar');
      return { kind: 'series', v: new Array<number | undefined>(length).fill(v.v) };
    }
    case 'METRICS': {
      const filter = args[0]?.t === 'str' ? args[0].v : undefined;
      return { kind: 'array', v: metricIds.filter((id) => !filter || id.includes(filter)).map(lookup) };
    }
    case 'FILL':
      return fill(ev(args[0]!), args[1], ev, length);
    case 'IF':
      return ifExpression(args, ev, length);
    case 'MAX':
    case 'MIN':
    case 'SUM':
    case 'AVG':
      return aggregate(fn, ev(args[0]!), length);
    default:
      throw new MetricMathError(`function ${fn} is not modelled by the twin`);
  }
}

function fill(target: Value, how: Node | undefined, ev: (n: Node) => Value, length: number): Value {
  const fillOne = (s: Series): Series => {
    if (how?.t === 'id' && how.name === 'REPEAT') {
      let last: number | undefined;
      return s.map((x) => (x === undefined ? last : (last = x)));
    }
    if (how?.t === 'id' && how.name === 'LINEAR') {
      return s.map((x, i) => {
        if (x !== undefined) return x;
        let a = i - 1;
        while (a >= 0 && s[a] === undefined) a--;
        let b = i + 1;
        while (b < s.length && s[b] === undefined) b++;
        if (a < 0 || b >= s.length) return undefined;
        return s[a]! + ((s[b]! - s[a]!) * (i - a)) / (b - a);
      });
    }
    const filler = asSeries(ev(how!), length);
    return s.map((x, i) => x ?? filler[i]);
  };
  if (target.kind === 'array') return { kind: 'array', v: target.v.map(fillOne) };
  return { kind: 'series', v: fillOne(asSeries(target, length)) };
}

function ifExpression(args: Node[], ev: (n: Node) => Value, length: number): Value {
  const cond = ev(args[0]!);
  const whenTrue = ev(args[1]!);
  const whenFalse = args[2] ? ev(args[2]) : undefined;
  if (cond.kind === 'scalar') {
    const chosen = cond.v !== 0 ? whenTrue : whenFalse;
    return chosen
      ? { kind: 'series', v: asSeries(chosen, length) }
      : { kind: 'series', v: new Array<number | undefined>(length).fill(undefined) };
  }
  const c = asSeries(cond, length);
  const out: Series = c.map((x, i) => {
    if (x === undefined) return undefined;
    if (x !== 0) {
      if (whenTrue.kind === 'scalar') return whenTrue.v;
      return asSeries(whenTrue, length)[i] ?? 0;
    }
    if (!whenFalse) return undefined;
    if (whenFalse.kind === 'scalar') return whenFalse.v;
    return asSeries(whenFalse, length)[i];
  });
  return { kind: 'series', v: out };
}

function aggregate(fn: string, v: Value, length: number): Value {
  const reduce = (xs: number[]): number | undefined => {
    if (xs.length === 0) return undefined;
    if (fn === 'MAX') return Math.max(...xs);
    if (fn === 'MIN') return Math.min(...xs);
    const sum = xs.reduce((a, b) => a + b, 0);
    return fn === 'SUM' ? sum : sum / xs.length;
  };
  if (v.kind === 'array') {
    const out: Series = [];
    for (let i = 0; i < length; i++) {
      const present = v.v.map((s) => s[i]).filter((x): x is number => x !== undefined);
      // SUM and AVG count a missing value as 0 next to present ones; MAX and MIN look at the present ones.
      const xs = fn === 'SUM' || fn === 'AVG' ? (present.length > 0 ? v.v.map((s) => s[i] ?? 0) : []) : present;
      out.push(reduce(xs));
    }
    return { kind: 'series', v: out };
  }
  if (v.kind === 'series') {
    const r = reduce(v.v.filter((x): x is number => x !== undefined));
    if (r === undefined) throw new MetricMathError(`${fn} of a series without data`);
    return { kind: 'scalar', v: r };
  }
  return v;
}
