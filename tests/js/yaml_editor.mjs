// Test helper (tests/test_schema.py): asks yaml-language-server, the engine of VS Code's YAML
// extension, what an editor would show for a spec under graphnet's schema. Reads one JSON object
// on standard input, {schema, requests: [{text, line, col, kind}]} with kind one of hover,
// complete, validate (0-based line and column), and prints a JSON list of answers: the hover's
// markdown, the completion labels, or the diagnostics as [line, col, message].
import { getLanguageService } from 'yaml-language-server';
import { TextDocument } from 'vscode-languageserver-textdocument';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { schema, requests } = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const service = getLanguageService({
  schemaRequestService: async () => JSON.stringify(schema),
  workspaceContext: { resolveRelativePath: (path) => path },
});
service.configure({ validate: true, hover: true, completion: true,
                    schemas: [{ uri: 'file:///graphnet.schema.json', fileMatch: ['*.yaml'], schema }] });
const answers = [];
for (const [i, r] of requests.entries()) {
  const doc = TextDocument.create(`file:///spec${i}.yaml`, 'yaml', 1, r.text);
  const position = { line: r.line ?? 0, character: r.col ?? 0 };
  if (r.kind === 'hover') {
    const hover = await service.doHover(doc, position);
    answers.push(hover ? hover.contents.value : null);
  } else if (r.kind === 'complete') {
    const list = await service.doComplete(doc, position, false);
    answers.push(list.items.map((item) => item.label));
  } else {
    const found = await service.doValidation(doc, false);
    answers.push(found.map((d) => [d.range.start.line, d.range.start.character, d.message]));
  }
}
console.log(JSON.stringify(answers));
