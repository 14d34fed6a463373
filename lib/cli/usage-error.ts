// A mistake in how the CLI was called; exits with status 2.
import { HtcGridError } from '../core';

export class UsageError extends HtcGridError {}
