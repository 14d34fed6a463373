// The deployment twin on the EKS plane: the agent pod of the synthesized Deployment (its containers, users, volumes
// and start order) runs as the twin runs an ECS task, with the pod's Pod Identity role checked by IAM. Needs root
// (namespaces); skips with a message.
import path from 'node:path';
import { unsupportedReason } from '../../twin/ecs/host-tools';
import { runTwin } from '../../twin/run-twin';

const REPO = path.resolve(__dirname, '..', '..');
const reason = unsupportedReason();
if (reason) console.warn(`skipping the EKS deployment twin test: ${reason}`);
const itTwin = reason ? it.skip : it;

itTwin(
  'runs 20 tasks through one agent pod of 2 slots, every AWS call of the pod allowed by its Pod Identity role',
  async () => {
    const lines: string[] = [];
    const summary = await runTwin({
      repoRoot: REPO,
      context: {
        compute: 'eks',
        worker: 'workers/python/mock-compute',
        lambda_handler_file_name: 'mock_compute_engine',
        slots: '2',
      },
      agents: 1,
      tasks: 20,
      event: () => ({ duration_ms: 5 }),
      timeoutSec: 300,
      progress: (line) => lines.push(line),
    });

    expect(summary.failures).toEqual([]);
    expect(summary).toMatchObject({ ok: true, succeeded: 20, lost: 0, duplicated: 0, iamDenials: 0 });
    const podRole = Object.keys(summary.iam!.checkedByRole).find((r) => r.startsWith('pod role of htcgrid-'));
    expect(podRole).toBeDefined();
    expect(summary.iam!.checkedByRole[podRole!]).toMatchObject({ 'sqs:ReceiveMessage': expect.any(Number) });
    // Kubernetes' order: the init container ends before the Lambda sidecars start, and they start before the agent.
    const at = (text: string): number => lines.findIndex((l) => l.includes(text));
    expect(at('fetch-worker exited 0')).toBeLessThan(at('lambda-0 started'));
    expect(at('lambda-1 started')).toBeLessThan(at('agent started'));
    expect(summary.notModelled).toContain('KEDA ScaledObject (EKS scaling)');
  },
  400_000,
);
