import { formatElapsed, progressBar } from '../time/duration.js';
/**
 * A progress display for long CLI jobs, on stderr so that stdout stays clean for results.
 * On a terminal: one line redrawn in place (`\r`) at most every `redrawMs`: a bar, the share done, rows, rows/s and
 * the time left. Elsewhere (a pipe, a log file, systemd's journal): a plain line every `lineEveryMs`, since `\r`
 * redraws would pile up there.
 */

export interface ProgressSink {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressState {
  rows: number;
  /** Work done and in all, in any unit (bytes of a file); without a total there is no bar and no ETA. */
  done?: number;
  total?: number;
}

export interface ProgressOptions {
  label: string;
  sink?: ProgressSink;
  now?: () => number;
  redrawMs?: number;
  lineEveryMs?: number;
}

export interface ProgressFigures {
  fraction: number | null;
  rowsPerSecond: number;
  etaSeconds: number | null;
}

/** Share done, rate and the time left, from the state and the seconds elapsed. */
export function progressFigures(state: ProgressState, elapsedSeconds: number): ProgressFigures {
  const fraction = state.total && state.done !== undefined ? Math.min(1, state.done / state.total) : null;
  const rowsPerSecond = elapsedSeconds > 0 ? state.rows / elapsedSeconds : 0;
  const etaSeconds = fraction !== null && fraction > 0 ? (elapsedSeconds * (1 - fraction)) / fraction : null;
  return { fraction, rowsPerSecond, etaSeconds };
}

/** The terminal line, fitted to `width` columns: `label [=====>    ]  45%  12345 rows  23456 rows/s  ETA 3s`. */
export function renderBar(label: string, state: ProgressState, elapsedSeconds: number, width: number, finished = false): string {
  const { fraction, rowsPerSecond, etaSeconds } = progressFigures(state, elapsedSeconds);
  const figures =
    `${state.rows} rows  ${Math.round(rowsPerSecond)} rows/s  ` +
    (finished ? `${formatElapsed(elapsedSeconds)}` : etaSeconds === null ? '' : `ETA ${formatElapsed(etaSeconds)}`);
  if (fraction === null) return `${label}  ${figures}`.trimEnd().slice(0, width);
  const percent = `${String(Math.floor(fraction * 100)).padStart(3)}%`;
  // Sized without the figures, whose length changes as they count up: the bar should not shrink as it fills.
  const barWidth = Math.max(0, Math.min(30, width - label.length - percent.length - 48));
  if (barWidth < 5) return `${label} ${percent}  ${figures}`.trimEnd().slice(0, width);
  const bar = progressBar(fraction, barWidth, ' ');
  return `${label} [${bar}] ${percent}  ${figures}`.trimEnd();
}

/** The plain line for logs: `import: 45% 12345 rows, 23456 rows/s, ETA 3s`. */
export function renderLine(label: string, state: ProgressState, elapsedSeconds: number): string {
  const { fraction, rowsPerSecond, etaSeconds } = progressFigures(state, elapsedSeconds);
  const share = fraction === null ? '' : `${Math.floor(fraction * 100)}% `;
  const eta = etaSeconds === null ? '' : `, ETA ${formatElapsed(etaSeconds)}`;
  return `${label}: ${share}${state.rows} rows, ${Math.round(rowsPerSecond)} rows/s${eta}`;
}

export class Progress {
  private readonly sink: ProgressSink;
  private readonly now: () => number;
  private readonly startedAt: number;
  private lastDrawAt = Number.NEGATIVE_INFINITY;
  private lastState: ProgressState = { rows: 0 };
  private drawn = false;

  constructor(private readonly options: ProgressOptions) {
    this.sink = options.sink ?? process.stderr;
    this.now = options.now ?? (() => performance.now());
    this.startedAt = this.now();
    this.lastDrawAt = this.startedAt;
  }

  update(state: ProgressState): void {
    this.lastState = state;
    const now = this.now();
    const tty = this.sink.isTTY === true;
    if (now - this.lastDrawAt < (tty ? (this.options.redrawMs ?? 100) : (this.options.lineEveryMs ?? 10_000))) return;
    this.lastDrawAt = now;
    this.draw(false);
  }

  /** The final state: on a terminal the bar is completed and the line ended; elsewhere nothing (a summary follows). */
  finish(state: ProgressState = this.lastState): void {
    this.lastState = state;
    if (this.sink.isTTY === true && this.drawn) this.draw(true);
  }

  private draw(finished: boolean): void {
    const elapsedSeconds = (this.now() - this.startedAt) / 1000;
    if (this.sink.isTTY === true) {
      const width = Math.max(20, (this.sink.columns || 80) - 1);
      // \x1b[K clears what a longer previous line left behind.
      this.sink.write(`\r${renderBar(this.options.label, this.lastState, elapsedSeconds, width, finished)}\x1b[K${finished ? '\n' : ''}`);
    } else {
      this.sink.write(`${renderLine(this.options.label, this.lastState, elapsedSeconds)}\n`);
    }
    this.drawn = true;
  }
}
