#!/usr/bin/env node
import module from 'node:module';

// V8's compile cache (Node 22.1+; a no-op before): later starts skip compiling the CLI, core and
// their dependencies. Enabled before they load, hence the dynamic import.
(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
const { main } = await import('./main.js');
process.exitCode = await main(process.argv.slice(2));
