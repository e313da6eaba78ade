/**
 * The command table. Adding a command is one entry here (the order is the order in
 * `mintun --help`).
 */
import type { Command } from "../cli.js";
import { caInit, caSignHost, caSignUser } from "./ca.js";
import { certShow } from "./cert.js";
import { caRevoke } from "./revoke.js";
import { enrol } from "./enrol.js";
import { keygen, pubkey } from "./keys.js";
import { install } from "./install.js";
import { checkConfig, peers, ping, reload, whois } from "./ops.js";
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
