/** What the benches measure besides wall time: event-loop delay, CPU time of this process and of the broker. */
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** Event-loop delay of this thread between start and stop, in ms. */
export function lagHistogram(resolutionMs = 10) {
  const histogram = monitorEventLoopDelay({ resolution: resolutionMs });
  return {
    start: () => histogram.enable(),
    stop() {
      histogram.disable();
      return { p50: histogram.percentile(50) / 1e6, p99: histogram.percentile(99) / 1e6, max: histogram.max / 1e6 };
    },
  };
}

/** CPU time (user + system) of another process so far, in µs, from /proc/<pid>/stat (clock ticks of 10 ms); null if unreadable. */
export function processCpuUs(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
      .replace(/^.*\) /, '')
      .split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000; // utime + stime
  } catch {
    return null;
  }
}

/** CPU time of this process and of the broker between start and stop, per message. */
export function cpuMeter(brokerPid: number | undefined) {
  let own = process.cpuUsage();
  let broker = processCpuUs(brokerPid);
  return {
    start() {
      own = process.cpuUsage();
      broker = processCpuUs(brokerPid);
    },
    stop(messages: number) {
      const used = process.cpuUsage(own);
      const brokerNow = processCpuUs(brokerPid);
      return {
        cpuUsPerMsg: (used.user + used.system) / messages,
        brokerCpuUsPerMsg: broker === null || brokerNow === null ? null : (brokerNow - broker) / messages,
      };
    },
  };
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms))),
  ]);
}
