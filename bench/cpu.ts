/**
 * A coarse CPU profile of a benchmark phase from /proc (Linux only; elsewhere it reports nothing):
 * CPU seconds per group of processes between two snapshots, and how busy the machine was.
 * Good enough to tell whether the database, the workers or the sink ate the cores.
 */
import { readdirSync, readFileSync } from "node:fs";
import { cpus } from "node:os";

const TICKS_PER_SECOND = 100;

interface Snapshot {
  at: number;
  /** pid → [cmdline, cpu ticks] */
  processes: Map<number, [string, number]>;
  /** busy and total jiffies of the whole machine */
  busy: number;
  total: number;
}

function snapshot(): Snapshot {
  const processes = new Map<number, [string, number]>();
  let busy = 0;
  let total = 0;
  try {
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const stat = readFileSync(`/proc/${name}/stat`, "utf8");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        const ticks = Number(fields[11]) + Number(fields[12]);
        const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8").replaceAll("\0", " ").trim();
        processes.set(Number(name), [cmdline, ticks]);
      } catch {
        // exited meanwhile
      }
    }
    const cpuLine = readFileSync("/proc/stat", "utf8")
      .split("\n")[0]!
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    total = cpuLine.reduce((a, b) => a + b, 0);
    const idle = (cpuLine[3] ?? 0) + (cpuLine[4] ?? 0);
    busy = total - idle;
  } catch {
    // not Linux
  }
  return { at: performance.now(), processes, busy, total };
}

export interface CpuProfile {
  /** CPU seconds per group during the phase. */
  seconds: Record<string, number>;
  /** Share of the machine's cores that were busy (0..1). */
  machineBusy: number;
  wallSeconds: number;
}

/** Starts measuring; `stop(classify)` returns CPU seconds per group named by `classify(pid, cmdline)`. */
export function startCpuProfile(): {
  stop(classify: (pid: number, cmdline: string) => string | undefined): CpuProfile;
} {
  const before = snapshot();
  return {
    stop(classify) {
      const after = snapshot();
      const seconds: Record<string, number> = {};
      for (const [pid, [cmdline, ticks]] of after.processes) {
        const group = classify(pid, cmdline);
        if (!group) continue;
        const start = before.processes.get(pid)?.[1] ?? 0;
        seconds[group] = (seconds[group] ?? 0) + (ticks - start) / TICKS_PER_SECOND;
      }
      for (const key of Object.keys(seconds)) seconds[key] = Math.round(seconds[key]! * 100) / 100;
      const total = after.total - before.total;
      return {
        seconds,
        machineBusy: total > 0 ? Math.round(((after.busy - before.busy) / total) * 100) / 100 : Number.NaN,
        wallSeconds: Math.round((after.at - before.at) / 10) / 100,
      };
    },
  };
}

export const CORES = cpus().length;
