// The synthesized CloudFormation template as the twin reads it: resources by logical id and type.
import fs from 'node:fs';
import { TwinTemplateError } from '../errors';

export interface CfnResource {
  readonly Type: string;
  readonly Properties?: Record<string, unknown>;
  readonly DependsOn?: string | readonly string[];
  readonly Metadata?: Record<string, unknown>;
}

export interface CfnOutput {
  readonly Value: unknown;
  readonly Description?: string;
}

export interface CfnTemplate {
  readonly Resources: Record<string, CfnResource>;
  readonly Outputs?: Record<string, CfnOutput>;
  readonly Parameters?: Record<string, unknown>;
  readonly Conditions?: Record<string, unknown>;
}

export function readTemplate(file: string): CfnTemplate {
  const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<CfnTemplate>;
  if (typeof doc.Resources !== 'object' || doc.Resources === null) {
    throw new TwinTemplateError(`${file} is not a CloudFormation template (no Resources)`);
  }
  return doc as CfnTemplate;
}

/** Logical ids and resources of one type, in template order. */
export function resourcesOfType(template: CfnTemplate, type: string): [string, CfnResource][] {
  return Object.entries(template.Resources).filter(([, r]) => r.Type === type);
}

/** The one resource of a type; an error naming the type when there is none or several. */
export function theResourceOfType(template: CfnTemplate, type: string): [string, CfnResource] {
  const found = resourcesOfType(template, type);
  if (found.length !== 1) {
    throw new TwinTemplateError(`the template holds ${found.length} ${type} resources; the twin runs exactly one`);
  }
  return found[0]!;
}

/** The construct path CDK records for a resource (`aws:cdk:path`), for messages. */
export function cdkPath(resource: CfnResource): string | undefined {
  const p = resource.Metadata?.['aws:cdk:path'];
  return typeof p === 'string' ? p : undefined;
}

/** A resolved template value as text (strings as they are, numbers and booleans printed, anything else as JSON). */
export function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value) ?? '';
}
