// Test helper: builds the CDK app the way bin/app.ts does, from context values, and returns its template.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Aspects, Validations, type IPolicyValidationPluginBeta1 } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { gridSettingsFromContext, gridStackProps } from '../../lib/infra/app-config';
import { HtcGridStack } from '../../lib/infra/htc-grid-stack';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'infra');
export const PYTHON_WORKER = path.join(FIXTURES, 'python-worker');

const CDK_JSON_CONTEXT = (
  JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'cdk.json'), 'utf8')) as { context: Record<string, unknown> }
).context;

export interface SynthOptions {
  /** Run local bundling (the worker zip, the reaper). Off by default: bundling is slow and masked anyway. */
  readonly bundle?: boolean;
  /** Apply cdk-nag AwsSolutions checks. */
  readonly nag?: boolean;
  /** Policy validation plugins run at synth (e.g. cfn-guard). */
  readonly validations?: readonly IPolicyValidationPluginBeta1[];
}

export interface SynthResult {
  readonly app: App;
  readonly stack: HtcGridStack;
  readonly template: Template;
}

/** Cloud assemblies written by this test file, removed when it ends. */
const outdirs: string[] = [];
afterAll(() => {
  for (const dir of outdirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** Synthesises the grid stack for `-c` context values (strings, as the CDK CLI passes them). */
export function synthGrid(context: Record<string, string>, options: SynthOptions = {}): SynthResult {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-synth-'));
  outdirs.push(outdir);
  const app = new App({
    outdir,
    context: {
      ...CDK_JSON_CONTEXT,
      ...(options.bundle ? {} : { 'aws:cdk:bundling-stacks': [] }),
      ...context,
    },
  });
  if (options.validations) Validations.of(app).addPlugins(...options.validations);
  const settings = gridSettingsFromContext(app.node.getAllContext() as Record<string, unknown>, REPO_ROOT);
  const stack = new HtcGridStack(app, settings.stackName, gridStackProps(settings));
  if (options.nag) Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  return { app, stack, template: Template.fromStack(stack) };
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The template with asset hashes and CDK version strings masked, so snapshots survive content changes. */
export function maskedTemplate(template: Template): Json {
  const text = JSON.stringify(template.toJSON())
    .replace(/[0-9a-f]{64}(\.zip|\.json)?/g, (_m, ext: string | undefined) => `[HASH]${ext ?? ''}`)
    .replace(/"cdk-hnb659fds-[a-z-]+-\$\{AWS::AccountId\}-\$\{AWS::Region\}"/g, '"[ASSETS]"');
  return JSON.parse(text) as Json;
}
