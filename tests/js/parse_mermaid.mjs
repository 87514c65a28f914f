// Parse Mermaid diagrams with Mermaid's own parser, headless, for tests/test_render.py.
//
// stdin: JSON [{"name": ..., "text": ..., "maxEdges": N, "structure": true}, ...]. Without maxEdges a
//        diagram is parsed under Mermaid's default config (at most 500 edges), as a web page would.
// stdout: JSON [{"name", "ok", "error"}, ...], one per diagram, in order; with "structure", also what
//         Mermaid read: "vertices": {id: {"text", "type"}}, "edges": [{"start", "end", "stroke",
//         "text"}], "subgraphs": [{"id", "title", "nodes"}].
//
// mermaid.parse runs the real grammar (the jison flowchart parser) and the flowchart database that
// checks what the grammar cannot (the edge limit, ids). It needs no layout and no browser, only a
// `window` for DOMPurify, which sanitizes labels as they are stored: jsdom provides one. Labels come
// back as Mermaid stores them: entity codes (#quot;) stay encoded, as its renderer decodes them.
import { JSDOM } from 'jsdom';

const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const diagrams = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const results = [];
for (const { name, text, maxEdges, structure } of diagrams) {
  mermaid.initialize({ startOnLoad: false, ...(maxEdges ? { maxEdges } : {}) });
  try {
    await mermaid.parse(text);
    if (!structure) {
      results.push({ name, ok: true, error: null });
      continue;
    }
    const { db } = await mermaid.mermaidAPI.getDiagramFromText(text);
    const vertices = {};
    for (const [id, v] of db.getVertices()) vertices[id] = { text: v.text, type: v.type ?? null };
    results.push({
      name, ok: true, error: null, vertices,
      edges: db.getEdges().map((e) => ({ start: e.start, end: e.end, stroke: e.stroke, text: e.text })),
      subgraphs: db.getSubGraphs().map((s) => ({ id: s.id, title: s.title, nodes: s.nodes })),
    });
  } catch (e) {
    results.push({ name, ok: false, error: String(e && e.message ? e.message : e) });
  }
}
process.stdout.write(JSON.stringify(results));
