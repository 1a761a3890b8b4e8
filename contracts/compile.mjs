// Compiles contracts/*.sol with solcjs (pinned in package.json), offline, EVM version "paris".
// Output: contracts/build/<Contract>.json = {contractName, abi, bytecode, deployedBytecode, sourceHash}.
// Run with `npm run compile` (after `npm ci`); chains/devchain.py runs it when the build is missing.
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..");
const buildDir = join(here, "build");

const sources = {};
for (const file of readdirSync(here).filter((f) => f.endsWith(".sol")).sort()) {
  sources[file] = { content: readFileSync(join(here, file), "utf8") };
}

function findImports(path) {
  try {
    return { contents: readFileSync(join(root, "node_modules", path), "utf8") };
  } catch (error) {
    return { error: `import not found: ${path} (${error.message}); run npm ci` };
  }
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    evmVersion: "paris",
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);

mkdirSync(buildDir, { recursive: true });
let count = 0;
for (const [file, contracts] of Object.entries(output.contracts)) {
  if (!(file in sources)) continue; // imported library files (OpenZeppelin)
  const sourceHash = createHash("sha256").update(sources[file].content).digest("hex");
  for (const [name, contract] of Object.entries(contracts)) {
    const artifact = {
      contractName: name,
      sourceName: file,
      sourceHash,
      compiler: solc.version(),
      evmVersion: "paris",
      abi: contract.abi,
      bytecode: "0x" + contract.evm.bytecode.object,
      deployedBytecode: "0x" + contract.evm.deployedBytecode.object,
    };
    writeFileSync(join(buildDir, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
    count += 1;
  }
}
console.log(`compiled ${count} contracts with solc ${solc.version()} (evm paris) into ${buildDir}`);
