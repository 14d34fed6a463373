// The twin refuses, before any ECS task runs, a checkout (or node) that a volume of the grid's task definition would
// hide inside the containers: a repository under /tmp made every task stop and the twin suites hang.
import { parseTaskDefinition } from '../../twin/ecs/task-definition';
import { hidingMounts, refuseHiddenHostPaths } from '../../twin/ecs/hidden-checkout';
import { TwinUnsupportedError } from '../../twin/errors';
import { PYTHON_WORKER, synthGrid } from '../infra/grid-app';
import { taskDefinition } from '../infra/template-helpers';

/** The grid's task definition as the twin reads it, from the synthesized template (the volumes it really mounts). */
const definition = parseTaskDefinition(taskDefinition(synthGrid({ worker: PYTHON_WORKER }).template));

describe("the twin's check of the host paths its containers need", () => {
  it('finds that every container of the grid mounts a volume over /tmp, so a checkout there is hidden', () => {
    const mounts = hidingMounts(definition, '/tmp/htc-grid-cdk');

    expect(new Set(mounts.map((m) => m.at))).toEqual(new Set(['/tmp']));
    expect(mounts.map((m) => m.container)).toEqual(expect.arrayContaining(['agent', 'lambda-0']));
  });

  it('refuses a checkout under /tmp, naming the folder, the volume and the fix', () => {
    const refuse = () => refuseHiddenHostPaths(definition, [{ what: 'the checkout', path: '/tmp/src/htc-grid-cdk' }]);

    expect(refuse).toThrow(TwinUnsupportedError);
    expect(refuse).toThrow(
      /the checkout \/tmp\/src\/htc-grid-cdk lies under a volume: container \S+ mounts volume \S+ at \/tmp/,
    );
    expect(refuse).toThrow(/every ECS task would stop/);
    expect(refuse).toThrow(/fix: move the checkout \(or node\) out of \/tmp: clone the repository under \$HOME/);
  });

  it('accepts a checkout and a node outside every mounted folder, including a sibling named like one', () => {
    expect(() =>
      refuseHiddenHostPaths(definition, [
        { what: 'the checkout', path: '/home/user/htc-grid-cdk' },
        { what: 'the checkout', path: '/tmpfoo/htc-grid-cdk' },
        { what: 'node', path: '/usr/local/bin/node' },
      ]),
    ).not.toThrow();
  });

  it('refuses a path that is itself a mount point', () => {
    expect(hidingMounts(definition, '/tmp')).not.toEqual([]);
  });
});
