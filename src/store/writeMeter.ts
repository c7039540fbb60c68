/**
 * SD-card wear: how many bytes this process makes the kernel send to storage (docs/reliability.md, F16).
 *
 * Linux counts them per process in /proc/self/io `write_bytes`, at page-dirtying time, for every thread (the
 * training threads included) and every file (database, -wal, checkpoints, logs written to files). A file system
 * without a block device (tmpfs) counts nothing. Elsewhere than Linux the counter is missing and the meter says null.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export interface WriteMetrics {
  /** Bytes written since the process started. */
  bytesWrittenTotal: number;
  /** Write rate over the last hour (or over the samples there are, when the meter is younger), in bytes per hour. */
  bytesPerHour: number;
}

/** Reads `write_bytes` from /proc/self/io; null when the file is missing or unreadable (not Linux, a locked-down /proc). */
export function readProcessWriteBytes(path = '/proc/self/io'): number | null {
  try {
    const match = /^write_bytes:\s*(\d+)$/m.exec(readFileSync(path, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

const HOUR_MS = 3_600_000;

interface Sample {
  atMs: number;
  bytes: number;
}

/**
 * A rolling write rate. Call `sample()` periodically (the housekeeping does it every minute); samples older than the
 * window are dropped, so the rate follows the last hour. Time is monotonic: a wall-clock jump cannot make a rate.
 */
export class WriteMeter {
  private readonly samples: Sample[] = [];
  private readonly read: () => number | null;
  private readonly now: () => number;
  private readonly windowMs: number;

  constructor(options: { read?: () => number | null; now?: () => number; windowMs?: number } = {}) {
    this.read = options.read ?? (() => readProcessWriteBytes());
    this.now = options.now ?? (() => performance.now());
    this.windowMs = options.windowMs ?? HOUR_MS;
  }

  /** Takes a reading and returns the metrics, or null where the counter cannot be read. */
  sample(): WriteMetrics | null {
    const bytes = this.read();
    if (bytes === null) return null;
    const atMs = this.now();
    this.samples.push({ atMs, bytes });
    // Keep the newest sample that is at least a window old as the base of the rate, and drop the ones before it.
    while (this.samples.length > 2 && atMs - this.samples[1].atMs >= this.windowMs) this.samples.shift();
    return this.metrics();
  }

  /** The metrics as of the last sample, or null before the first one. */
  metrics(): WriteMetrics | null {
    const last = this.samples[this.samples.length - 1];
    if (!last) return null;
    const first = this.samples[0];
    const elapsedMs = last.atMs - first.atMs;
    // One sample gives a total but no rate yet.
    const bytesPerHour = elapsedMs > 0 ? Math.round(((last.bytes - first.bytes) / elapsedMs) * HOUR_MS) : 0;
    return { bytesWrittenTotal: last.bytes, bytesPerHour };
  }
}
