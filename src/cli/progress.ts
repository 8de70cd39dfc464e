/**
 * Progress display on cli-progress: one bar with the stage, counts, rate and ETA. It draws only
 * on a terminal; in logs (CI, worker processes) it prints a line every few seconds instead.
 */
import cliProgress from 'cli-progress';

export interface ProgressBar {
  update(stage: string, done: number, total: number, fields?: Record<string, string | number>): void;
  log(line: string): void;
  stop(): void;
}

export function progressBar(name: string, format = '{stage} |{bar}| {percentage}% {value}/{total} {extra} ETA {eta_formatted}'): ProgressBar {
  const tty = Boolean(process.stderr.isTTY) && !process.env.CI;
  if (!tty) {
    let last = 0;
    return {
      update(stage, done, total, fields = {}) {
        const now = Date.now();
        if (now - last < 5000 && done < total) return;
        last = now;
        const extra = Object.entries(fields).map(([k, v]) => `${k} ${v}`).join(' ');
        process.stderr.write(`[${name}] ${stage} ${done}/${total} ${extra}\n`);
      },
      log: (line) => process.stderr.write(`${line}\n`),
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar({ format, stream: process.stderr, hideCursor: true, etaBuffer: 50 }, cliProgress.Presets.shades_classic);
  let started = false;
  return {
    update(stage, done, total, fields = {}) {
      const extra = Object.entries(fields).map(([k, v]) => `${k} ${v}`).join(' ');
      if (!started) {
        bar.start(total, done, { stage, extra });
        started = true;
      }
      bar.setTotal(total);
      bar.update(done, { stage, extra });
    },
    log(line) {
      if (started) bar.stop();
      process.stderr.write(`${line}\n`);
      started = false;
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

export interface MultiProgress {
  /** Set a line's state; `name` identifies it (the overall line, a worker...). */
  update(name: string, done: number, total: number, label: string): void;
  remove(name: string): void;
  log(line: string): void;
  stop(): void;
}

/** Several progress lines at once (the experiment's grid and its running cells). */
export function multiProgress(title: string): MultiProgress {
  const tty = Boolean(process.stderr.isTTY) && !process.env.CI;
  if (!tty) {
    const last = new Map<string, number>();
    return {
      update(name, done, total, label) {
        const now = Date.now();
        if (now - (last.get(name) ?? 0) < 10_000 && done < total) return;
        last.set(name, now);
        process.stderr.write(`[${title}] ${name}: ${label} ${done}/${total}\n`);
      },
      remove: (name) => void last.delete(name),
      log: (line) => process.stderr.write(`${line}\n`),
      stop() {},
    };
  }
  const multi = new cliProgress.MultiBar(
    { format: '{name} |{bar}| {value}/{total} {label}', stream: process.stderr, hideCursor: true, clearOnComplete: false, autopadding: true },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  return {
    update(name, done, total, label) {
      let bar = bars.get(name);
      if (!bar) {
        bar = multi.create(total, done, { name: name.padEnd(10), label });
        bars.set(name, bar);
      }
      bar.setTotal(total);
      bar.update(done, { name: name.padEnd(10), label });
    },
    remove(name) {
      const bar = bars.get(name);
      if (bar) multi.remove(bar);
      bars.delete(name);
    },
    log: (line) => multi.log(`${line}\n`),
    stop: () => multi.stop(),
  };
}
