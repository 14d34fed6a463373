// Every AWS call made during a twin run, by whom, what it needed, and whether the template's policies allow it.
import { evaluateAccess, type AccessDecision } from './policy-evaluator';
import type { ActionOnResource, RequestActions } from './request-actions';
import { policiesGoverning, type ResourcePolicy, type TemplateRole } from './template-policies';

/** Who holds a set of fake credentials: a role of the template, or a twin/bootstrap identity not in the template. */
export interface CallerIdentity {
  /** Short name for reports: `task role`, `reaper role`, `client role`, ... */
  readonly label: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** The template role, when the caller acts as one (its calls are checked). */
  readonly role?: TemplateRole;
}

export interface Denial {
  readonly caller: string;
  readonly operation: string;
  readonly action: string;
  readonly resource: string;
  readonly reason: AccessDecision['reason'];
  readonly statement?: string;
}

interface Tally {
  caller: string;
  action: string;
  resource: string;
  count: number;
  allowed: boolean;
}

/** Condition keys every request carries, as AWS would see them (the twin itself speaks plain HTTP). */
export const ASSUMED_CONTEXT = {
  /** The SDK and CLI reach AWS over HTTPS; the twin's HTTP hop to the emulators is a twin artefact. */
  'aws:SecureTransport': 'true',
  /** The lowest TLS version the SDK and CLI negotiate with S3. */
  's3:TlsVersion': '1.2',
} as const;

export class AccessLedger {
  private readonly tallies = new Map<string, Tally>();
  private readonly denials: Denial[] = [];
  private readonly unevaluated = new Set<string>();
  private readonly unchecked = new Map<string, number>();
  private total = 0;

  private callers: readonly CallerIdentity[] = [];
  private resourcePolicies: readonly ResourcePolicy[] = [];

  /** Who holds which credentials, and the resource policies in force (set again as more of the stack resolves). */
  configure(callers: readonly CallerIdentity[], resourcePolicies: readonly ResourcePolicy[]): void {
    this.callers = callers;
    this.resourcePolicies = resourcePolicies;
  }

  callerOf(accessKeyId: string | undefined): CallerIdentity | undefined {
    return this.callers.find((c) => c.accessKeyId === accessKeyId);
  }

  /** Decides a request: `undefined` when allowed (or not checkable), else the first denial. */
  authorize(accessKeyId: string | undefined, actions: RequestActions): Denial | undefined {
    this.total++;
    const caller = this.callerOf(accessKeyId);
    if (!caller?.role) {
      const who = caller?.label ?? `unknown credentials ${accessKeyId ?? '(unsigned)'}`;
      this.unchecked.set(who, (this.unchecked.get(who) ?? 0) + 1);
      return undefined;
    }
    let first: Denial | undefined;
    for (const need of actions.needs) {
      const decision = this.decide(caller, need, actions.context);
      this.tally(caller.label, need, decision.allowed);
      for (const s of decision.unevaluated) this.unevaluated.add(s);
      if (!decision.allowed) {
        const denial: Denial = {
          caller: caller.label,
          operation: actions.operation,
          action: need.action,
          resource: need.resource,
          reason: decision.reason,
          statement: decision.statement,
        };
        if (this.denials.length < 100) this.denials.push(denial);
        first ??= denial;
      }
    }
    return first;
  }

  get deniedCount(): number {
    let n = 0;
    for (const t of this.tallies.values()) if (!t.allowed) n += t.count;
    return n;
  }

  summary() {
    const byCaller: Record<string, Record<string, number>> = {};
    for (const t of this.tallies.values()) {
      const actions = (byCaller[t.caller] ??= {});
      actions[t.action] = (actions[t.action] ?? 0) + t.count;
    }
    return {
      calls: this.total,
      checkedByRole: byCaller,
      denied: this.deniedCount,
      denials: this.denials.slice(0, 20),
      conditionsNotEvaluated: [...this.unevaluated],
      notChecked: Object.fromEntries(this.unchecked),
    };
  }

  private decide(caller: CallerIdentity, need: ActionOnResource, context: Readonly<Record<string, string>>) {
    const role = caller.role!;
    return evaluateAccess(
      {
        action: need.action,
        resource: need.resource,
        principalArn: role.arn,
        context: {
          ...ASSUMED_CONTEXT,
          'aws:PrincipalArn': role.arn,
          'aws:PrincipalAccount': role.arn.split(':')[4] ?? '',
          ...context,
        },
      },
      role.policies,
      policiesGoverning(this.resourcePolicies, need.resource),
    );
  }

  private tally(caller: string, need: ActionOnResource, allowed: boolean): void {
    const key = `${caller}|${need.action}|${need.resource}|${allowed}`;
    const t = this.tallies.get(key);
    if (t) t.count++;
    else this.tallies.set(key, { caller, action: need.action, resource: need.resource, count: 1, allowed });
  }
}
