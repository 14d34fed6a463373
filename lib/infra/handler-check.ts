// Checks, at synth, that a worker zip holds the handler the Lambda containers will run, and tells runtimes apart by
// what a zip holds: a handler missing from the zip would otherwise fail every task in AWS, silently at deploy.
import * as fs from 'node:fs';
import AdmZip from 'adm-zip';
import { parseHandler } from '../core/handler';
import type { RuntimeFamily, WorkerRuntime } from '../core/runtime-kind';

/** The handler names a runtime family uses when none is configured: AWS Lambda's own defaults for each. */
export function defaultHandlerNames(family: RuntimeFamily): { fileName: string; functionName: string } {
  return family === 'node'
    ? { fileName: 'index', functionName: 'handler' }
    : { fileName: 'lambda_function', functionName: 'lambda_handler' };
}

/** What a check needs of a zip: its entry names and a way to read a text entry. */
export interface ZipContents {
  readonly names: readonly string[];
  read(name: string): string;
}

export function readZip(zipPath: string): ZipContents {
  const zip = new AdmZip(fs.readFileSync(zipPath));
  const entries = zip.getEntries().filter((e) => !e.isDirectory);
  return {
    names: entries.map((e) => e.entryName),
    read: (name) => zip.getEntry(name)?.getData().toString('utf8') ?? '',
  };
}

/** The runtime families the root of a zip points at (as `detectWorkerRuntime` reads a folder). */
export function zipRuntimeFamilies(names: readonly string[]): RuntimeFamily[] {
  const root = names.filter((n) => !n.includes('/'));
  const families: RuntimeFamily[] = [];
  if (root.some((n) => n.endsWith('.py'))) families.push('python');
  if (root.some((n) => /\.[cm]?js$/.test(n))) families.push('node');
  if (root.includes('bootstrap')) families.push('provided');
  return families;
}

const MODULE_SUFFIXES: Readonly<Record<RuntimeFamily, readonly string[]>> = {
  python: ['.py', '/__init__.py'],
  node: ['.js', '.mjs', '.cjs'],
  provided: [],
};

/**
 * Every reason the zip cannot serve `handler` on `runtime` (empty when it can): the handler's module is not in the
 * zip, or the module never mentions the function. The function check is textual on purpose: a module that names
 * the function is given the benefit of the doubt, one that never does certainly fails.
 */
export function zipHandlerIssues(zip: ZipContents, handler: string, runtime: WorkerRuntime): string[] {
  if (runtime.family === 'provided') {
    return zip.names.includes('bootstrap')
      ? []
      : [`runtime ${runtime.name}: the worker zip has no bootstrap at its root: add an executable bootstrap`];
  }
  const { module, function: fn } = parseHandler(handler);
  // Python's `pkg.module` and Node's `dir/module` both name a path in the zip.
  const base = runtime.family === 'python' ? module.replace(/\./g, '/') : module;
  const candidates = MODULE_SUFFIXES[runtime.family].map((suffix) => `${base}${suffix}`);
  const file = candidates.find((c) => zip.names.includes(c));
  if (!file) {
    const modules = zip.names
      .filter(
        (n) => !n.includes('/') && MODULE_SUFFIXES[runtime.family].some((s) => !s.startsWith('/') && n.endsWith(s)),
      )
      .map((n) => n.replace(/\.[^.]+$/, ''));
    const known = modules.length > 0 ? `one of its modules (${modules.slice(0, 6).join(', ')})` : 'its module';
    return [
      `handler ${handler}: the worker zip has no ${candidates[0]}: set lambda_handler_file_name to ${known}, ` +
        `or add ${candidates[0]} to the worker`,
    ];
  }
  if (!new RegExp(`(^|[^A-Za-z0-9_$])${fn.replace(/\$/g, '\\$')}([^A-Za-z0-9_$]|$)`).test(zip.read(file))) {
    return [
      `handler ${handler}: ${file} in the worker zip defines no ${fn}: set lambda_handler_function_name to its handler function`,
    ];
  }
  return [];
}
