// The agent's EMF sink: stdout by default, or a CloudWatch agent's EMF socket (TCP: a line each; UDP: a datagram each).
import dgram from 'node:dgram';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { ConfigError } from '../../../lib/core/errors';
import { openEmfSink, parseEmfEndpoint } from '../../../lib/runtime/agent';

describe('parseEmfEndpoint', () => {
  it('reads tcp:// and udp:// endpoints with a host and a port', () => {
    expect(parseEmfEndpoint('tcp://10.0.1.7:25888')).toEqual({ protocol: 'tcp', host: '10.0.1.7', port: 25888 });
    expect(parseEmfEndpoint('udp://[::1]:25888')).toEqual({ protocol: 'udp', host: '::1', port: 25888 });
  });

  it.each(['10.0.1.7:25888', 'http://agent:25888', 'tcp://agent', 'tcp://agent:0', 'tcp://$(HTCGRID_NODE_IP):25888'])(
    'rejects %s, naming the forms it takes',
    (value) => {
      expect(() => parseEmfEndpoint(value)).toThrow(ConfigError);
      expect(() => parseEmfEndpoint(value)).toThrow(/use tcp:\/\/host:port or udp:\/\/host:port/);
    },
  );
});

describe('openEmfSink', () => {
  it('writes a line each to stdout when no endpoint is set', async () => {
    const out = new PassThrough();
    const sink = openEmfSink(undefined, { stdout: out });
    sink.write('{"a":1}');
    sink.write('{"b":2}');
    await sink.close();
    expect(sink.target).toBe('stdout');
    expect(String(out.read())).toBe('{"a":1}\n{"b":2}\n');
  });

  it('sends every line over TCP, those written before the connection opened included, and closes', async () => {
    const received: string[] = [];
    let ended!: () => void;
    const done = new Promise<void>((resolve) => (ended = resolve));
    const server = net.createServer((socket) => {
      socket.on('data', (chunk: Buffer) => received.push(chunk.toString()));
      socket.on('end', () => {
        socket.end();
        ended();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const sink = openEmfSink(`tcp://127.0.0.1:${port}`);
      for (let i = 0; i < 3; i++) sink.write(JSON.stringify({ i }));
      await sink.close();
      await done;
      expect(received.join('').split('\n')).toEqual(['{"i":0}', '{"i":1}', '{"i":2}', '']);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('sends a datagram per line over UDP', async () => {
    const server = dgram.createSocket('udp4');
    const received: string[] = [];
    const got = new Promise<void>((resolve) =>
      server.on('message', (msg) => {
        received.push(msg.toString());
        if (received.length === 2) resolve();
      }),
    );
    await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
    try {
      const sink = openEmfSink(`udp://127.0.0.1:${server.address().port}`);
      sink.write('{"a":1}');
      sink.write('{"b":2}');
      await got;
      await sink.close();
      expect(received.sort()).toEqual(['{"a":1}\n', '{"b":2}\n']);
    } finally {
      server.close();
    }
  });

  it('reports lines it cannot deliver, and closes, when nothing listens', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    const errors: Error[] = [];
    const sink = openEmfSink(`tcp://127.0.0.1:${port}`, { onError: (e) => errors.push(e) });
    sink.write('{"a":1}');
    await sink.close();
    expect(errors.map((e) => (e as NodeJS.ErrnoException).code)).toEqual(['ECONNREFUSED']);
  });
});
