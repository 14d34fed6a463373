// IAM policy evaluation for one request (action + resource ARN) against identity and resource policies, as AWS
// documents it for principals and resources of one account: an explicit Deny wins, then any Allow, else denied.

/** A policy statement as it appears in a synthesized template (intrinsics already resolved). */
export interface PolicyStatement {
  readonly Sid?: string;
  readonly Effect: 'Allow' | 'Deny';
  readonly Action?: string | readonly string[];
  readonly NotAction?: string | readonly string[];
  readonly Resource?: string | readonly string[];
  readonly NotResource?: string | readonly string[];
  readonly Principal?: unknown;
  readonly Condition?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

export interface PolicyDocument {
  readonly Statement: PolicyStatement | readonly PolicyStatement[];
}

/** A named policy, for explanations (`GridTaskRoleDefaultPolicy`, `bucket policy of ...`). */
export interface NamedPolicy {
  readonly name: string;
  readonly document: PolicyDocument;
}

export interface AccessRequest {
  /** `service:Operation`, e.g. `dynamodb:PutItem`. */
  readonly action: string;
  /** The ARN the action is on. */
  readonly resource: string;
  /** The principal's ARN (role), for resource policies. */
  readonly principalArn: string;
  /** Condition keys known for this request (`aws:SecureTransport`, `s3:prefix`, ...), values as strings. */
  readonly context: Readonly<Record<string, string | readonly string[]>>;
}

export interface AccessDecision {
  readonly allowed: boolean;
  /** `allowed`, `explicit-deny`, `implicit-deny`. */
  readonly reason: 'allowed' | 'explicit-deny' | 'implicit-deny';
  /** Which statement allowed or denied it (`<policy>#<index or Sid>`). */
  readonly statement?: string;
  /** Statements whose conditions use keys the twin does not know: not applied, listed here. */
  readonly unevaluated: readonly string[];
}

type Match = 'match' | 'no-match' | 'unknown';

/**
 * Decides `request` against the principal's identity policies and the resource's policy. Statements of resource
 * policies apply only when their `Principal` names this principal, its account, or everyone.
 */
export function evaluateAccess(
  request: AccessRequest,
  identityPolicies: readonly NamedPolicy[],
  resourcePolicies: readonly NamedPolicy[] = [],
): AccessDecision {
  const unevaluated: string[] = [];
  let allow: string | undefined;
  let deny: string | undefined;
  const consider = (policy: NamedPolicy, fromResource: boolean) => {
    statements(policy.document).forEach((s, i) => {
      const id = `${policy.name}#${s.Sid ?? i}`;
      if (fromResource && !principalMatches(s.Principal, request.principalArn)) return;
      if (!actionMatches(s, request.action) || !resourceMatches(s, request.resource)) return;
      const conditions = conditionsMatch(s.Condition, request.context);
      if (conditions === 'unknown') {
        unevaluated.push(id);
        return;
      }
      if (conditions === 'no-match') return;
      if (s.Effect === 'Deny') deny ??= id;
      else allow ??= id;
    });
  };
  for (const p of identityPolicies) consider(p, false);
  for (const p of resourcePolicies) consider(p, true);
  if (deny) return { allowed: false, reason: 'explicit-deny', statement: deny, unevaluated };
  if (allow) return { allowed: true, reason: 'allowed', statement: allow, unevaluated };
  return { allowed: false, reason: 'implicit-deny', unevaluated };
}

function statements(doc: PolicyDocument): readonly PolicyStatement[] {
  const s = doc.Statement;
  return Array.isArray(s) ? (s as readonly PolicyStatement[]) : [s as PolicyStatement];
}

function list(value: string | readonly string[] | undefined): readonly string[] {
  if (value === undefined) return [];
  return typeof value === 'string' ? [value] : [...value];
}

function actionMatches(s: PolicyStatement, action: string): boolean {
  if (s.NotAction !== undefined) return !list(s.NotAction).some((p) => globMatch(p, action, true));
  return list(s.Action).some((p) => globMatch(p, action, true));
}

function resourceMatches(s: PolicyStatement, resource: string): boolean {
  if (s.NotResource !== undefined) return !list(s.NotResource).some((p) => globMatch(p, resource, false));
  // A statement without Resource (resource policies) applies to the resource it is attached to.
  if (s.Resource === undefined) return true;
  return list(s.Resource).some((p) => globMatch(p, resource, false));
}

function principalMatches(principal: unknown, principalArn: string): boolean {
  if (principal === '*') return true;
  if (typeof principal !== 'object' || principal === null) return false;
  const aws = (principal as { AWS?: string | string[] }).AWS;
  const account = principalArn.split(':')[4] ?? '';
  return list(aws).some(
    (p) => p === '*' || p === principalArn || p === account || p === `arn:aws:iam::${account}:root`,
  );
}

/** IAM wildcards: `*` any run of characters, `?` one character; actions compare case-insensitively. */
export function globMatch(pattern: string, value: string, ignoreCase: boolean): boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${source}$`, ignoreCase ? 'i' : '').test(value);
}

/** All condition blocks must hold; a block whose key the request does not know makes the statement unknown. */
function conditionsMatch(condition: PolicyStatement['Condition'], context: AccessRequest['context']): Match {
  if (!condition) return 'match';
  let unknown = false;
  for (const [rawOperator, block] of Object.entries(condition)) {
    for (const [key, expected] of Object.entries(block)) {
      const values = Array.isArray(expected) ? (expected as unknown[]) : [expected];
      const result = conditionMatches(rawOperator, context[key], values.map(String));
      if (result === 'no-match') return 'no-match';
      if (result === 'unknown') unknown = true;
    }
  }
  return unknown ? 'unknown' : 'match';
}

function conditionMatches(
  rawOperator: string,
  actual: string | readonly string[] | undefined,
  expected: readonly string[],
): Match {
  let operator = rawOperator;
  let setMode: 'any' | 'all' | undefined;
  if (operator.startsWith('ForAnyValue:')) [setMode, operator] = ['any', operator.slice('ForAnyValue:'.length)];
  if (operator.startsWith('ForAllValues:')) [setMode, operator] = ['all', operator.slice('ForAllValues:'.length)];
  const ifExists = operator.endsWith('IfExists');
  if (ifExists) operator = operator.slice(0, -'IfExists'.length);
  if (operator === 'Null') {
    if (actual === undefined) return expected.includes('true') ? 'match' : 'no-match';
    return expected.includes('false') ? 'match' : 'no-match';
  }
  if (actual === undefined) return ifExists ? 'match' : 'unknown';
  const values = list(actual);
  const test = valueTest(operator);
  if (!test) return 'unknown';
  const one = (v: string) => {
    const negated = operator.includes('Not');
    const hit = expected.some((e) => test(v, e));
    return negated ? !expected.some((e) => test(v, e)) : hit;
  };
  const ok = setMode === 'all' ? values.every(one) : values.some(one);
  return ok ? 'match' : 'no-match';
}

function valueTest(operator: string): ((actual: string, expected: string) => boolean) | undefined {
  switch (operator) {
    case 'StringEquals':
    case 'StringNotEquals':
    case 'ArnEquals':
    case 'ArnNotEquals':
      return (a, e) => a === e;
    case 'StringEqualsIgnoreCase':
    case 'StringNotEqualsIgnoreCase':
      return (a, e) => a.toLowerCase() === e.toLowerCase();
    case 'StringLike':
    case 'StringNotLike':
    case 'ArnLike':
    case 'ArnNotLike':
      return (a, e) => globMatch(e, a, false);
    case 'Bool':
      return (a, e) => a.toLowerCase() === e.toLowerCase();
    case 'NumericEquals':
    case 'NumericNotEquals':
      return (a, e) => Number(a) === Number(e);
    case 'NumericLessThan':
      return (a, e) => Number(a) < Number(e);
    case 'NumericLessThanEquals':
      return (a, e) => Number(a) <= Number(e);
    case 'NumericGreaterThan':
      return (a, e) => Number(a) > Number(e);
    case 'NumericGreaterThanEquals':
      return (a, e) => Number(a) >= Number(e);
    default:
      return undefined;
  }
}
