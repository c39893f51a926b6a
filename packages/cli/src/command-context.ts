/** The daemon's and the scheduling commands' name for what every command module gets (context.ts). */
export type { CliContext as CommandContext } from './context.js';
