/** Log lines (src/log-pino.ts): one JSON object per line, each key once. */
import { describe, expect, it } from "vitest";
import { createLogger } from "../../src/log-pino.js";

/** The top-level keys of a JSON object text in order, repeats included (JSON.parse keeps the last). */
function topLevelKeys(line: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === '"') {
      let j = i + 1;
      while (line[j] !== '"') j += line[j] === "\\" ? 2 : 1;
      if (depth === 1 && line[j + 1] === ":") keys.push(JSON.parse(line.slice(i, j + 1)) as string);
      i = j;
    } else if (ch === "{" || ch === "[") depth++;
    else if (ch === "}" || ch === "]") depth--;
  }
  return keys;
}

describe("log lines", () => {
  it("name each key once: component bound once, fields that repeat a line key renamed", () => {
    const lines: string[] = [];
    const root = createLogger("debug", { write: (l) => void lines.push(l) });
    root.log("info", "starting", { config: "/etc/mintun/mintund.yaml" });
    const engine = root.child("engine");
    engine.log("warn", "record refused", { peer: "b", c: "field named c", msg: "m", level: 9, time: 1 });
    engine.child("etcd").log("info", "nested");
    root.child("api").log("debug", "plain");
    expect(lines).toHaveLength(4);
    for (const l of lines) {
      const keys = topLevelKeys(l);
      expect(new Set(keys).size, l).toBe(keys.length);
    }
    const j = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(j.map((x) => x.c)).toEqual(["mintund", "engine", "etcd", "api"]);
    expect(j[1]).toMatchObject({
      level: "warn",
      msg: "record refused",
      peer: "b",
      c_: "field named c",
      msg_: "m",
    });
    expect(j[1]!.level_).toBe(9);
    expect(j[0]).not.toHaveProperty("pid");
    expect(topLevelKeys(lines[0]!).slice(0, 3)).toEqual(["level", "time", "c"]);
  });

  it("the key scanner sees repeats (so the test above can fail)", () => {
    expect(topLevelKeys('{"c":"a","x":{"c":1},"c":"b","s":"\\"c\\":"}')).toEqual(["c", "x", "c", "s"]);
  });
});
