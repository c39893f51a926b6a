/**
 * A one-line progress display for long work, drawn on stderr only when it is a TTY and logs are
 * not JSON. Everything else (CI, cron, pipes) sees only log lines.
 */
export interface Progress {
  /** Reports that `task` has moved `bytes` so far. */
  update(task: string, bytes: number): void;
  done(task: string): void;
  clear(): void;
}

export const noProgress: Progress = { update() {}, done() {}, clear() {} };

export function createProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return noProgress;
  const tasks = new Map<string, { bytes: number; started: number }>();
  let lastDraw = 0;
  let drawn = false;
  const clear = () => {
    if (drawn) {
      stream.write('\r\x1b[2K');
      drawn = false;
    }
  };
  const draw = () => {
    const now = Date.now();
    if (now - lastDraw < 100) return;
    lastDraw = now;
    const parts = [...tasks].map(([name, t]) => {
      const secs = Math.max((now - t.started) / 1000, 0.001);
      return `${name} ${formatBytes(t.bytes)} (${formatBytes(t.bytes / secs)}/s)`;
    });
    const line = parts.join('  |  ').slice(0, Math.max((stream.columns ?? 80) - 1, 20));
    stream.write(`\r\x1b[2K${line}`);
    drawn = true;
  };
  return {
    update(task, bytes) {
      const t = tasks.get(task) ?? { bytes: 0, started: Date.now() };
      t.bytes = bytes;
      tasks.set(task, t);
      draw();
    },
    done(task) {
      tasks.delete(task);
      if (tasks.size === 0) clear();
    },
    clear,
  };
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
