import { createServer, type AddressInfo, type Server } from 'node:net';
import { Aedes } from 'aedes';

/**
 * A real MQTT broker inside the process (aedes), on a free loopback port: the demo and the tests use
 * it where no Mosquitto runs. aedes 1.x speaks MQTT 3.1.1 only, so clients must use protocolVersion 4.
 */
export interface EmbeddedBroker {
  url: string;
  port: number;
  protocolVersion: 4;
  close(): Promise<void>;
}

export async function startEmbeddedBroker(port = 0): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker();
  const server: Server = createServer(aedes.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const { port: boundPort } = server.address() as AddressInfo;
  return {
    url: `mqtt://127.0.0.1:${boundPort}`,
    port: boundPort,
    protocolVersion: 4,
    close: () =>
      new Promise<void>((resolve) => {
        // aedes first: it disconnects its clients, whose open sockets would keep server.close() waiting.
        aedes.close(() => server.close(() => resolve()));
      }),
  };
}
