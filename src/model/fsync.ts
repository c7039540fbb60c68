import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

// Node 20's writeFile has no `flush` option (it arrived in Node 21), and a rename is only durable once the
// directory holding the entry is fsynced (fsync(2)). These helpers make both explicit, through a descriptor.

/** 0 where the platform lacks the flag, so the helpers still open files there (without the protection). */
const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const O_DIRECTORY = constants.O_DIRECTORY ?? 0;

export interface DurableWriteOptions {
  /** Fail with EEXIST instead of replacing an existing file. */
  exclusive?: boolean;
  mode?: number;
}

/**
 * Writes `data` to `filePath` and fsyncs the file before returning. A symlink at `filePath` is refused (ELOOP)
 * rather than followed. The directory entry is not synced here: call {@link fsyncDirectory} after the rename or
 * batch of creations that must survive a power cut.
 */
export async function writeFileDurably(filePath: string, data: Uint8Array | string, options: DurableWriteOptions = {}): Promise<void> {
  const flags = constants.O_WRONLY | constants.O_CREAT | O_NOFOLLOW | (options.exclusive ? constants.O_EXCL : constants.O_TRUNC);
  const handle = await open(filePath, flags, options.mode ?? 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Fsyncs a directory, so that entries created, renamed or removed in it reach the disk (Linux: open O_RDONLY + fsync). */
export async function fsyncDirectory(dirPath: string): Promise<void> {
  const handle = await open(dirPath, constants.O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
