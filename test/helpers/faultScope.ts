/**
 * What a fault test starts, and its release in one `close()`: private brokers with their `$SYS` drop counter,
 * temp directories, daemon processes, MQTT clients, and anything else registered with `onClose`.
 *
 * Release runs in reverse order of creation, which is the order the resources depend on each other: a daemon
 * started on a temp directory (or a tmpfs) is killed before the directory goes, a proxy before its broker.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { spawnDaemon, type DaemonProcess } from './daemonProcess.js';
import { startMosquitto, watchSysCounter, type MosquittoOptions, type PrivateMosquitto, type SysCounter } from './mosquitto.js';

export class FaultScope {
  private readonly releases: Array<() => unknown> = [];

  /** `label` names the temp directories (forecastd-<label>-<name>-XXXXXX). */
  constructor(private readonly label: string) {}

  /** Registers a release; returns `resource` for chaining. Errors while releasing are ignored. */
  onClose<T>(resource: T, release: () => unknown): T {
    this.releases.push(release);
    return resource;
  }

  tempDir(name: string): string {
    const dir = mkdtempSync(join(tmpdir(), `forecastd-${this.label}-${name}-`));
    return this.onClose(dir, () => rmSync(dir, { recursive: true, force: true }));
  }

  /** A private Mosquitto, and a subscriber following its `$SYS/broker/publish/messages/dropped`. */
  async broker(options: MosquittoOptions = {}): Promise<{ mosquitto: PrivateMosquitto; dropped: SysCounter }> {
    const mosquitto: PrivateMosquitto = await startMosquitto(options);
    this.onClose(mosquitto, () => mosquitto.close());
    const dropped: SysCounter = await watchSysCounter(mosquitto.url);
    this.onClose(dropped, () => dropped.close());
    return { mosquitto, dropped };
  }

  /** forecastd as a child process; killed (SIGKILL) at close if still running. */
  spawn(configPath: string, env?: NodeJS.ProcessEnv): DaemonProcess {
    const daemon = spawnDaemon(configPath, env);
    return this.onClose(daemon, async () => {
      daemon.kill('SIGKILL');
      await daemon.exited;
    });
  }

  /** An MQTT client ended (forcibly) at close. */
  track<T extends MqttClient>(client: T): T {
    return this.onClose(client, () => client.endAsync(true));
  }

  async close(): Promise<void> {
    for (const release of this.releases.splice(0).reverse()) {
      try {
        await release();
      } catch {
        // Best effort: one failed release must not keep the others from running.
      }
    }
  }
}
