/** Every top-level command, in the order `berth --help` lists them. */
import { agent } from './agent.js';
import { apply } from './apply.js';
import { cluster } from './cluster.js';
import type { CliCommand } from './define.js';
import { keyCommands } from './key.js';
import { teamCommands, userCommands } from './team.js';
import { login, logout, whoami } from './login.js';
import { nodeCommands } from './node.js';
import { podCommands } from './pod.js';
import { portForward } from './port-forward.js';
import { registryCommands } from './registry.js';
import { secretCommands } from './secret.js';
import { server } from './server.js';
import { ssh } from './ssh.js';
import { sshKeyCommands } from './ssh-key.js';
import { templateCommands } from './template.js';
import { tokenCommands } from './token.js';
import { volumeCommands } from './volume.js';

export const COMMANDS: readonly CliCommand[] = [podCommands, apply, ssh, portForward, volumeCommands, templateCommands, registryCommands, secretCommands, sshKeyCommands, nodeCommands, tokenCommands, cluster, keyCommands, teamCommands, userCommands, login, logout, whoami, server, agent];
