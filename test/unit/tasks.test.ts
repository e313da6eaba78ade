import { describe, expect, it } from "vitest";
import { TaskGuard, errorFields } from "../../src/daemon/tasks.js";
import type { Logger } from "../../src/log.js";

function memLog(): { log: Logger; lines: { level: string; msg: string; f: Record<string, unknown> }[] } {
  const lines: { level: string; msg: string; f: Record<string, unknown> }[] = [];
  const log = {
    log: (level: string, msg: string, f: Record<string, unknown>) => lines.push({ level, msg, f }),
    child: () => log,
    level: () => "info",
  } as unknown as Logger;
  return { log, lines };
}

describe("TaskGuard", () => {
  it("counts and logs an exception of a periodic task and does not rethrow", () => {
    const { log, lines } = memLog();
    const g = new TaskGuard(log, () => 0);
    let ran = 0;
    const tick = g.wrap("engine.tick", () => {
      ran++;
      if (ran % 2 === 0) throw Object.assign(new TypeError("boom"), { code: "EBOOM" });
    });
    for (let i = 0; i < 4; i++) tick();
    expect(ran).toBe(4);
    expect(g.errors["engine.tick"]).toBe(2);
    expect(g.total).toBe(2);
    expect(lines[0]!.level).toBe("error");
    expect(lines[0]!.f).toMatchObject({
      task: "engine.tick",
      error: "TypeError",
      code: "EBOOM",
      message: "boom",
    });
  });

  it("bounds the log lines per task per minute but counts every error", () => {
    const { log, lines } = memLog();
    let now = 0;
    const g = new TaskGuard(log, () => now);
    for (let i = 0; i < 100; i++)
      g.run("udp.batch", () => {
        throw new Error("x");
      });
    expect(g.errors["udp.batch"]).toBe(100);
    expect(lines.length).toBe(5);
    now = 60_000;
    g.run("udp.batch", () => {
      throw new Error("x");
    });
    expect(lines.length).toBe(6);
  });

  it("errorFields handles non-errors", () => {
    expect(errorFields("s")).toEqual({ error: "string", message: "s" });
  });
});
