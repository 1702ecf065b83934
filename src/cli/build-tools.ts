// `npm run tools:build [-- openfga k6 kubeconform heimdall]`: builds the pinned Go tools once (see src/stack/go-tools.ts).
import { ensureTool, HEIMDALL, K6, KUBECONFORM, OPENFGA, ToolBuildError, type GoTool } from '../stack/go-tools.js';

const known: Record<string, GoTool> = { openfga: OPENFGA, k6: K6, kubeconform: KUBECONFORM, heimdall: HEIMDALL };
const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['openfga'];
try {
  for (const name of names) {
    const tool = known[name];
    if (!tool) throw new ToolBuildError(`unknown tool "${name}": choose from ${Object.keys(known).join(', ')}`);
    const path = await ensureTool(tool);
    process.stderr.write(`tiergate: ${name} ready at ${path}\n`);
  }
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
