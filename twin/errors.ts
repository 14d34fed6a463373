// Errors of the deployment twin: each names what the template or the machine did not allow, and the fix.
import { HtcGridError, type HtcGridErrorOptions } from '../lib/core/errors';

/** The synthesized template holds something the twin cannot run or resolve (a twin limitation or a template bug). */
export class TwinTemplateError extends HtcGridError {
  constructor(message: string, options: HtcGridErrorOptions = {}) {
    super(message, options);
  }
}

/** This machine cannot run the twin (no root, no namespaces, a missing tool). */
export class TwinUnsupportedError extends HtcGridError {
  constructor(message: string, options: HtcGridErrorOptions = {}) {
    super(message, options);
  }
}
