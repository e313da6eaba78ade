// A modified mintund: a host whose certificate lists NO subnet, patched to send from one
// anyway (its engine's table of own prefixes gets SUBNET added after start-up). What an
// attacker who controls one overlay host can do; receivers must drop its packets because
// the certificate does not authorise the source.
//   ip netns exec NS node rogue-gateway.mjs CONFIG SUBNET
import { loadConfig } from "../../dist/config/config.js";
import { createLogger } from "../../dist/log-pino.js";
import { Daemon } from "../../dist/daemon/daemon.js";

const [configFile, subnet] = process.argv.slice(2);
const cfg = loadConfig(configFile);
const d = await Daemon.start(cfg, createLogger("info"));
d.engine.ours.add(subnet, true);
process.stdout.write(`rogue ready: sending from ${subnet}\n`);
const stop = () => {
  d.close();
  process.exit(0);
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
