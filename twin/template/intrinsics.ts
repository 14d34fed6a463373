// CloudFormation intrinsic functions (Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select, Fn::Split, ...) resolved over
// the twin's physical names, as CloudFormation resolves them at deploy time.
import { TwinTemplateError } from '../errors';

/** What resolution needs from the deployment: pseudo parameters and the physical values of resources. */
export interface IntrinsicContext {
  /** `AWS::AccountId`, `AWS::Region`, `AWS::Partition`, `AWS::URLSuffix`, `AWS::StackName`, ... */
  readonly pseudo: Readonly<Record<string, string>>;
  /** `{ "Ref": logicalId }` of a resource or parameter. */
  ref(logicalId: string, path: string): unknown;
  /** `{ "Fn::GetAtt": [logicalId, attribute] }`. */
  getAtt(logicalId: string, attribute: string, path: string): unknown;
}

const NO_VALUE = Symbol('AWS::NoValue');

/** Resolves every intrinsic function inside `value`; `path` names where it sits, for errors. */
export function resolveIntrinsics(value: unknown, ctx: IntrinsicContext, path = '$'): unknown {
  const resolved = resolveAny(value, ctx, path);
  return resolved === NO_VALUE ? undefined : resolved;
}

/** Resolves `value` and requires a string. */
export function resolveString(value: unknown, ctx: IntrinsicContext, path = '$'): string {
  const resolved = resolveIntrinsics(value, ctx, path);
  if (typeof resolved === 'number' || typeof resolved === 'boolean') return String(resolved);
  if (typeof resolved !== 'string') {
    throw new TwinTemplateError(`${path}: expected a string, the template gives ${JSON.stringify(resolved)}`);
  }
  return resolved;
}

function resolveAny(value: unknown, ctx: IntrinsicContext, path: string): unknown {
  if (Array.isArray(value)) {
    return value.map((v, i) => resolveAny(v, ctx, `${path}[${i}]`)).filter((v) => v !== NO_VALUE);
  }
  if (typeof value !== 'object' || value === null) return value;
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 1) {
    const [key, arg] = entries[0]!;
    if (key === 'Ref' || key.startsWith('Fn::')) return resolveFunction(key, arg, ctx, `${path}.${key}`);
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of entries) {
    const r = resolveAny(v, ctx, `${path}.${k}`);
    if (r !== NO_VALUE) out[k] = r;
  }
  return out;
}

function resolveFunction(fn: string, arg: unknown, ctx: IntrinsicContext, path: string): unknown {
  switch (fn) {
    case 'Ref': {
      const name = expectString(arg, path);
      if (name === 'AWS::NoValue') return NO_VALUE;
      if (name.startsWith('AWS::')) return pseudo(name, ctx, path);
      return ctx.ref(name, path);
    }
    case 'Fn::GetAtt': {
      const [logicalId, attribute] = Array.isArray(arg)
        ? [expectString(arg[0], path), expectString(resolveAny(arg[1], ctx, path), path)]
        : splitOnce(expectString(arg, path), path);
      return ctx.getAtt(logicalId, attribute, path);
    }
    case 'Fn::Join': {
      const [sep, list] = expectPair(arg, path);
      const items = resolveAny(list, ctx, path);
      if (!Array.isArray(items)) throw new TwinTemplateError(`${path}: Fn::Join needs a list`);
      return items.map((item, i) => scalar(item, `${path}[${i}]`)).join(expectString(sep, path));
    }
    case 'Fn::Select': {
      const [index, list] = expectPair(arg, path);
      const items = resolveAny(list, ctx, path);
      const i = Number(resolveAny(index, ctx, path));
      if (!Array.isArray(items) || !Number.isInteger(i) || i < 0 || i >= items.length) {
        throw new TwinTemplateError(`${path}: Fn::Select index ${i} is outside the list ${JSON.stringify(items)}`);
      }
      return items[i];
    }
    case 'Fn::Split': {
      const [sep, source] = expectPair(arg, path);
      return scalar(resolveAny(source, ctx, path), path).split(expectString(sep, path));
    }
    case 'Fn::Sub':
      return substitute(arg, ctx, path);
    case 'Fn::Base64':
      return Buffer.from(scalar(resolveAny(arg, ctx, path), path), 'utf8').toString('base64');
    case 'Fn::GetAZs': {
      const region = pseudo('AWS::Region', ctx, path);
      return ['a', 'b', 'c'].map((z) => `${region}${z}`);
    }
    case 'Fn::If':
    case 'Fn::Equals':
    case 'Fn::Not':
    case 'Fn::And':
    case 'Fn::Or':
    case 'Fn::FindInMap':
    case 'Fn::ImportValue':
    case 'Fn::Cidr':
    default:
      throw new TwinTemplateError(`${path}: ${fn} is not supported by the twin (the grid's template does not use it)`);
  }
}

/** `Fn::Sub`: `${Name}`, `${Resource.Attribute}`, `${AWS::Pseudo}` and `${!Literal}`, with optional variables. */
function substitute(arg: unknown, ctx: IntrinsicContext, path: string): string {
  const [template, vars] = Array.isArray(arg)
    ? [expectString(arg[0], path), (arg[1] ?? {}) as Record<string, unknown>]
    : [expectString(arg, path), {} as Record<string, unknown>];
  return template.replace(/\$\{([^}]*)\}/g, (_whole, expr: string) => {
    if (expr.startsWith('!')) return `\${${expr.slice(1)}}`;
    if (expr in vars) return scalar(resolveAny(vars[expr], ctx, `${path}.${expr}`), path);
    if (expr.startsWith('AWS::')) return pseudo(expr, ctx, path);
    const dot = expr.indexOf('.');
    const value = dot >= 0 ? ctx.getAtt(expr.slice(0, dot), expr.slice(dot + 1), path) : ctx.ref(expr, path);
    return scalar(value, path);
  });
}

function pseudo(name: string, ctx: IntrinsicContext, path: string): string {
  const v = ctx.pseudo[name];
  if (v === undefined) throw new TwinTemplateError(`${path}: pseudo parameter ${name} is not modelled by the twin`);
  return v;
}

function scalar(value: unknown, path: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new TwinTemplateError(`${path}: expected a string, got ${JSON.stringify(value)}`);
}

function expectString(value: unknown, path: string): string {
  if (typeof value !== 'string')
    throw new TwinTemplateError(`${path}: expected a string, got ${JSON.stringify(value)}`);
  return value;
}

function expectPair(value: unknown, path: string): [unknown, unknown] {
  if (!Array.isArray(value) || value.length !== 2) {
    throw new TwinTemplateError(`${path}: expected [a, b], got ${JSON.stringify(value)}`);
  }
  return [value[0], value[1]];
}

function splitOnce(value: string, path: string): [string, string] {
  const dot = value.indexOf('.');
  if (dot < 0) throw new TwinTemplateError(`${path}: Fn::GetAtt "${value}" needs <logicalId>.<attribute>`);
  return [value.slice(0, dot), value.slice(dot + 1)];
}
