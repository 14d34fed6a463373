// The one place that builds and parses a worker's handler string (`<file>.<function>`).
import { ConfigError } from './errors';

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/**
 * Builds the handler string Lambda expects from the two HTC-Grid configuration keys.
 *
 * HTC-Grid users often put the whole `module.function` in `lambda_handler_file_name` and leave the function name
 * empty (its Terraform only worked that way); that form is accepted too.
 */
export function handlerString(fileName: string, functionName: string): string {
  const file = fileName.trim();
  const fn = functionName.trim();
  if (!file) {
    throw new ConfigError([
      `agent_configuration.lambda.lambda_handler_file_name is empty: set it to the worker's module (e.g. "lambda_function")`,
    ]);
  }
  if (!fn) {
    if (file.includes('.')) return file;
    throw new ConfigError([
      `agent_configuration.lambda.lambda_handler_function_name is empty: set it to the handler function (e.g. "lambda_handler")`,
    ]);
  }
  if (!IDENTIFIER.test(fn)) {
    throw new ConfigError([
      `agent_configuration.lambda.lambda_handler_function_name "${fn}" is not a function name: use letters, digits and _ only`,
    ]);
  }
  return `${stripExtension(file)}.${fn}`;
}

/** Splits `path/to/module.function` (or `pkg.module.function`) into the module path and the function name. */
export function parseHandler(handler: string): { module: string; function: string } {
  const dot = handler.lastIndexOf('.');
  if (dot <= 0 || dot === handler.length - 1) {
    throw new ConfigError([
      `handler "${handler}" is not of the form <file>.<function> (e.g. "lambda_function.lambda_handler")`,
    ]);
  }
  return { module: handler.slice(0, dot), function: handler.slice(dot + 1) };
}

function stripExtension(file: string): string {
  return file.replace(/\.(py|js|mjs|cjs|ts)$/, '');
}
