// How long the SQS emulator layer (test/support/sqs-emulator.ts) takes to hand a message to a receive: the part of
// an SQS delivery on the emulators that SQS itself answers within milliseconds, measured without the rest of a grid.
// Run: npm run build && node dist/bench/sqs-layer.js [--rounds 100]
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
  type Message,
} from '@aws-sdk/client-sqs';
import { loadAverage1m, percentile } from './peers/figures';
import { EMULATOR_CREDENTIALS, EMULATOR_REGION } from '../test/support/emulators';
import { startFaithfulSqs } from '../test/support/sqs-emulator';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '100' } } });
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds ${values.rounds}: give a whole number ≥ 1`);
  const sqs = await startFaithfulSqs({ region: EMULATOR_REGION });
  const client = new SQSClient({ endpoint: sqs.endpoint, region: EMULATOR_REGION, credentials: EMULATOR_CREDENTIALS });
  try {
    const { QueueUrl } = await client.send(new CreateQueueCommand({ QueueName: `sqs-layer-${process.pid}` }));
    const receive = () =>
      client.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 20 }));
    const done = async (messages: readonly Message[] | undefined) => {
      for (const m of messages ?? [])
        await client.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: m.ReceiptHandle }));
    };
    const waiting: number[] = [];
    const sentFirst: number[] = [];
    for (let i = 0; i < rounds; i++) {
      // A long poll already waiting when the message is sent (the agent's, the client's notice receive).
      const receiving = receive();
      await sleep(5 + Math.random() * 20);
      await client.send(new SendMessageCommand({ QueueUrl, MessageBody: 'waiting' }));
      let t0 = performance.now();
      await done((await receiving).Messages);
      waiting.push(performance.now() - t0);
      // A receive made when the message is already there.
      await client.send(new SendMessageCommand({ QueueUrl, MessageBody: 'sent first' }));
      await sleep(2);
      t0 = performance.now();
      await done((await receive()).Messages);
      sentFirst.push(performance.now() - t0);
      if ((i + 1) % 50 === 0) console.error(`  ${i + 1}/${rounds}`);
    }
    console.log(`SQS emulator layer, ${rounds} rounds, load average ${loadAverage1m()}`);
    console.log(`| case | rounds | p50 ms | p90 ms | max ms |`);
    console.log(`|---|---:|---:|---:|---:|`);
    for (const [name, samples] of [
      ['long poll waiting: send answered → receive answered', waiting],
      ['message sent first: receive sent → answered', sentFirst],
    ] as const) {
      const sorted = [...samples].sort((a, b) => a - b);
      const f = (q: number) => (percentile(sorted, q) ?? NaN).toFixed(2);
      console.log(`| ${name} | ${samples.length} | ${f(50)} | ${f(90)} | ${f(100)} |`);
    }
  } finally {
    client.destroy();
    await sqs.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
