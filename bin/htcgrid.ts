#!/usr/bin/env node
// Entry of the `htcgrid` command.
import { main } from '../lib/cli';

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`error: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
