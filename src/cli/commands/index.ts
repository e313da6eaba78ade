/**
 * The command table with every module loaded (tests use it). Adding a command is one
 * entry here and one in table.ts (the lazy table bin/mintun runs from; same order, the
 * order in `mintun --help`; test/unit/cli-habits.test.ts checks they agree).
 */
import type { Command } from "../cli.js";
import { caInit, caSignHost, caSignUser } from "./ca.js";
import { certShow } from "./cert.js";
import { caRevoke } from "./revoke.js";
import { enrol } from "./enrol.js";
import { keygen, pubkey } from "./keys.js";
import { install } from "./install.js";
import { checkConfig } from "./check-config.js";
import { peers, ping, reload, whois } from "./ops.js";
import { resolve } from "./resolve.js";
import { status } from "./status.js";
import { USER_COMMANDS } from "./users.js";

export const COMMANDS: readonly Command[] = [
  caInit,
  caSignHost,
  caSignUser,
  caRevoke,
  keygen,
  pubkey,
  enrol,
  certShow,
  status,
  peers,
  ping,
  whois,
  reload,
  resolve,
  checkConfig,
  install,
  ...USER_COMMANDS,
];
