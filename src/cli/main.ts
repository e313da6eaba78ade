/**
 * Entry point of the `mintun` CLI (bin/mintun imports this file; importing it runs the
 * CLI). Tests and other tools use runCli from ./cli.js with their own Io.
 */
import { processIo, registerCommand, registeredCommands, runCli } from "./cli.js";
import { COMMANDS } from "./commands/index.js";

export { registerCommand, runCli };

for (const c of COMMANDS) if (!registeredCommands().includes(c)) registerCommand(c);

process.exitCode = await runCli(process.argv.slice(2), processIo());
