/**
 * Entry point of the `mintun` CLI (bin/mintun runs the bundle built from this file,
 * dist/cli-bundle/mintun.cjs, or dist/cli/main.js when there is no bundle; importing it
 * runs the CLI). Commands are loaded lazily from commands/table.ts. Tests and other
 * tools use runCli from ./cli.js with their own Io.
 */
import { processIo, registerCommand, registeredCommands, runCli } from "./cli.js";
import { LAZY_COMMANDS } from "./commands/table.js";
import { packageVersion } from "../version.js";

export { registerCommand, runCli };

for (const c of LAZY_COMMANDS)
  if (!registeredCommands().some((r) => r.path.join(" ") === c.path.join(" "))) registerCommand(c);

// no top-level await: the bundle is CommonJS (scripts/bundle-cli.mjs)
void runCli(process.argv.slice(2), processIo(), registeredCommands(), {
  version: () => packageVersion(import.meta.url),
}).then((code) => {
  process.exitCode = code;
});
