/**
 * The Node.js floor, checked before anything else runs. Imported first by ../cli.ts: ES modules are
 * evaluated in import order, so this runs before any command module is loaded. Command modules
 * are loaded lazily and are the only ones that use Node 24's zstd; an older Node therefore gets
 * this one line instead of a SyntaxError about a missing export.
 *
 * `npm install` brings Node 24 itself (the `node` package in dependencies puts a real Node binary
 * in node_modules/.bin), and npm scripts and `npx fastpatch` put that folder first on the PATH.
 */
export const MIN_NODE_MAJOR = 24;

const major = Number(process.versions.node.split('.')[0]);
if (!(major >= MIN_NODE_MAJOR)) {
  process.stderr.write(
    `fastpatch: USAGE: needs Node.js ${MIN_NODE_MAJOR} or newer, this is ${process.versions.node} (${process.execPath}); ` +
      'run it as `npx fastpatch ...` in the project folder, which uses the Node.js that `npm install` put in node_modules/.bin\n',
  );
  process.exit(2);
}
