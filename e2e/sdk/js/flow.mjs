// The official JS SDK (`meilisearch` on npm) against Miroir: create index → add documents →
// wait → search → settings → filtered/sorted search → documents → stats → keys →
// multi-search → a failing batch → delete. Run by e2e/tests/sdk_js.rs with MEILISEARCH_URL/MEILISEARCH_MASTER_KEY.
import { Meilisearch } from "meilisearch";
const Client = Meilisearch;
const client = new Client({ host: process.env.MEILISEARCH_URL, apiKey: process.env.MEILISEARCH_MASTER_KEY });
const ok = (c, w) => { if (!c) { console.error("FAILED: " + w); process.exit(1); } console.log("ok: " + w); };
const GENRES = ["drama", "comedy", "horror", "documentary"];
const docs = Array.from({ length: 200 }, (_, i) => ({ id: `m-${i}`, title: `Film ${i} ${i % 10 === 0 ? "galaxy" : "plain"}`, genre: GENRES[i % 4], year: 1950 + (i % 70) }));
const uid = "js_movies";
let t = await client.createIndex(uid, { primaryKey: "id" }).waitTask();
ok(t.status === "succeeded", "createIndex " + JSON.stringify(t.error));
const index = client.index(uid);
t = await index.addDocuments(docs).waitTask();
ok(t.status === "succeeded" && t.details.indexedDocuments === 200, "addDocuments " + JSON.stringify(t.details));
let r = await index.search("galaxy", { limit: 50 });
ok(r.hits.length === 20, "search galaxy " + r.hits.length);
t = await index.updateSettings({ filterableAttributes: ["genre"], sortableAttributes: ["year"] }).waitTask();
ok(t.status === "succeeded", "updateSettings");
r = await index.search("", { filter: ["genre = horror"], sort: ["year:desc"], limit: 100 });
ok(r.estimatedTotalHits === 50, "filter " + r.estimatedTotalHits);
const d = await index.getDocument("m-7");
ok(d.genre === GENRES[3], "getDocument");
const docsList = await index.getDocuments({ limit: 30, offset: 10 });
ok(docsList.results.length === 30 && docsList.total === 200, "getDocuments " + docsList.total);
const stats = await index.getStats();
ok(stats.numberOfDocuments === 200, "stats " + stats.numberOfDocuments);
const keys = await client.getKeys();
ok(keys.results.some(k => k.name === "Default Search API Key"), "default keys " + keys.results.map(k => k.name));
const ms = await client.multiSearch({ queries: [{ indexUid: uid, q: "galaxy" }, { indexUid: uid, q: "plain", limit: 5 }] });
ok(ms.results.length === 2 && ms.results[1].hits.length === 5, "multiSearch");
// A batch whose task fails (docs/contract.md#primary-key): enqueued, then failed with
// Meilisearch's error — the sequence SDK suites assert, never a synchronous error.
const pending = index.addDocuments([{ id: "ok-1" }, { title: "no id" }]);
const enq = await pending;
ok(enq.status === "enqueued", "failing batch enqueued " + enq.status);
t = await pending.waitTask();
ok(t.status === "failed" && t.error.code === "missing_document_id" && t.details.indexedDocuments === 0,
  "failing batch failed " + JSON.stringify(t.error));
t = await client.index("js_no_pk").addDocuments([{ title: "x" }]).waitTask();
ok(t.status === "failed" && t.error.code === "index_primary_key_no_candidate_found", "no candidate " + JSON.stringify(t.error));
ok((await index.getStats()).numberOfDocuments === 200, "nothing written");
t = await client.deleteIndex(uid).waitTask();
ok(t.status === "succeeded", "deleteIndex");
console.log("js SDK flow: all good");
