/**
 * The package version and root, read from the package.json of the tree this file runs from
 * (dist/version.js, the bundled CLI in dist/cli-bundle/, or an installed copy): the
 * nearest package.json named "mintun" above this module.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

function findPackage(from: string): { dir: string; version: string; packaging: string | null } | null {
  let dir = path.dirname(fileURLToPath(from));
  for (let i = 0; i < 6; i++) {
    try {
      const pj = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as {
        name?: string;
        version?: string;
        packaging?: unknown;
      };
      if (pj.name === "mintun" && typeof pj.version === "string")
        return {
          dir,
          version: pj.version,
          packaging: typeof pj.packaging === "string" ? pj.packaging : null,
        };
    } catch {
      // not here: look one level up
    }
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return null;
}

export function packageVersion(from: string = import.meta.url): string {
  return findPackage(from)?.version ?? "unknown";
}

/** The root of the mintun tree this module runs from (where package.json is), or null. */
export function packageRoot(from: string = import.meta.url): string | null {
  return findPackage(from)?.dir ?? null;
}

/**
 * How the tree this module runs from was installed: "deb" for the Debian package
 * (scripts/package.sh writes `"packaging": "deb"` into /usr/lib/mintun/package.json),
 * null for a source tree or a `mintun install` copy of one.
 */
export function packaging(from: string = import.meta.url): string | null {
  return findPackage(from)?.packaging ?? null;
}
