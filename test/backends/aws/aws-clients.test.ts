// The grid's SDK clients never wait forever: a service that accepts a request and never answers fails it.
import net from 'node:net';
import { DynamoDbTaskTable, createAwsClients } from '../../../lib/backends/aws';

describe('the grid’s AWS clients', () => {
  let server: net.Server;
  let endpoint: string;
  const sockets = new Set<net.Socket>();
  const saved = { ...process.env };

  beforeAll(async () => {
    // Accepts connections and reads requests, but never answers: a hung connection.
    server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('data', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_DYNAMODB: endpoint,
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
    });
  });

  afterAll(async () => {
    process.env = saved;
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('fail a request whose answer never comes after the request timeout, instead of hanging', async () => {
    const { dynamodb, sqs, s3 } = createAwsClients({ region: 'us-east-1', requestTimeoutMs: 300 });
    const table = new DynamoDbTaskTable({ tableName: 'tasks', client: dynamodb, retry: { maxAttempts: 1 } });

    try {
      await expect(table.getTask('t_0')).rejects.toThrow(/timed? ?out/i);
    } finally {
      for (const client of [dynamodb, sqs, s3]) client.destroy();
    }
  }, 15_000);
});
