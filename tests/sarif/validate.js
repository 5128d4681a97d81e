// Validates SARIF files against the SARIF 2.1.0 JSON schema (the official rtm.5 schema
// as shipped in @microsoft/jest-sarif) with ajv. Used by tests/sarif_output.rs.
// Usage: node validate.js FILE...   Exit 0: all valid; 1: errors printed; 2: cannot run.
'use strict';
const fs = require('fs');
const path = require('path');

let Ajv, schema, draft4;
try {
  const base = path.join(__dirname, 'node_modules');
  Ajv = require(path.join(base, 'ajv'));
  draft4 = require(path.join(base, 'ajv', 'lib', 'refs', 'json-schema-draft-04.json'));
  schema = JSON.parse(fs.readFileSync(
    path.join(base, '@microsoft', 'jest-sarif', 'lib', 'schemas', 'sarif-2.1.0-rtm.5.json'), 'utf8'));
} catch (e) {
  console.error(`validator not installed (run: npm install --prefix tests/sarif): ${e.message}`);
  process.exit(2);
}
const ajv = new Ajv({ schemaId: 'auto', allErrors: true });
ajv.addMetaSchema(draft4);
const validate = ajv.compile(schema);
let bad = 0;
for (const file of process.argv.slice(2)) {
  const log = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (validate(log)) {
    console.log(`${file}: valid SARIF 2.1.0`);
  } else {
    bad++;
    for (const err of validate.errors) {
      console.log(`${file}: ${err.dataPath || '/'} ${err.message} ${JSON.stringify(err.params)}`);
    }
  }
}
process.exit(bad ? 1 : 0);
