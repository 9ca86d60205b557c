"""The official Python SDK (`meilisearch` on PyPI) against Miroir: create index → add
documents → wait for task → search → settings → stats → delete. Every call must succeed and
return what one Meilisearch would. Run by e2e/tests/sdk_python.rs with MEILISEARCH_URL and
MEILISEARCH_MASTER_KEY pointing at a Miroir deployment.
"""
import os
import sys

import meilisearch

url = os.environ["MEILISEARCH_URL"]
key = os.environ.get("MEILISEARCH_MASTER_KEY")
client = meilisearch.Client(url, key)

GENRES = ["drama", "comedy", "horror", "documentary"]
docs = [
    {
        "id": i,
        "title": f"Movie number {i} " + ("space odyssey" if i % 10 == 0 else "ordinary story"),
        "genre": GENRES[i % 4],
        "year": 1950 + (i % 70),
    }
    for i in range(300)
]


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


assert client.is_healthy()
check(client.health()["status"] == "available", "health")
check("pkgVersion" in client.get_version(), "version")

task = client.create_index("sdk_movies", {"primaryKey": "id"})
check(isinstance(task.task_uid, int), "create_index returns an integer task uid")
done = client.wait_for_task(task.task_uid, timeout_in_ms=30000)
check(done.status == "succeeded", f"index creation succeeded ({done.status} {done.error})")

index = client.index("sdk_movies")
task = index.add_documents(docs)
done = client.wait_for_task(task.task_uid, timeout_in_ms=60000)
check(done.status == "succeeded", f"add_documents succeeded ({done.status} {done.error})")
check(done.details.get("indexedDocuments") == 300, f"indexedDocuments summed: {done.details}")

res = index.search("odyssey", {"limit": 100})
check(len(res["hits"]) == 30, f"search finds the 30 odyssey movies once each ({len(res['hits'])})")
check(len({h["id"] for h in res["hits"]}) == 30, "no duplicate hits")
check(all("_miroir_shard" not in h for h in res["hits"]), "reserved field hidden in hits")

doc = index.get_document(42)
check(doc.id == 42 and doc.genre == GENRES[42 % 4], "get_document by id")

task = index.update_settings({"filterableAttributes": ["genre", "year"], "sortableAttributes": ["year"]})
done = client.wait_for_task(task.task_uid, timeout_in_ms=60000)
check(done.status == "succeeded", f"update_settings succeeded ({done.status} {done.error})")
settings = index.get_settings()
check(sorted(settings["filterableAttributes"]) == ["genre", "year"], f"filterable read back: {settings['filterableAttributes']}")
check(settings["searchableAttributes"] == ["*"], f"searchable read back as *: {settings['searchableAttributes']}")

res = index.search("", {"filter": "genre = drama", "sort": ["year:asc"], "limit": 1000, "facets": ["genre"]})
check(res["estimatedTotalHits"] == 75, f"filter genre = drama: {res['estimatedTotalHits']}")
years = [h["year"] for h in res["hits"]]
check(years == sorted(years), "sorted by year ascending")
check(res["facetDistribution"]["genre"] == {"drama": 75}, f"facets: {res.get('facetDistribution')}")

page1 = index.search("movie", {"hitsPerPage": 10, "page": 1})
check(page1["totalHits"] == 300 and page1["totalPages"] == 30, f"page mode totals: {page1.get('totalHits')} {page1.get('totalPages')}")

stats = index.get_stats()
check(stats.number_of_documents == 300, f"stats count logical documents: {stats.number_of_documents}")
check("_miroir_shard" not in (stats.field_distribution or {}), "reserved field hidden in fieldDistribution")

tasks = client.get_tasks({"indexUids": ["sdk_movies"]})
check(len(tasks.results) >= 3, f"tasks listed: {len(tasks.results)}")

task = client.delete_index("sdk_movies")
done = client.wait_for_task(task.task_uid, timeout_in_ms=30000)
check(done.status == "succeeded", "delete_index succeeded")
try:
    client.get_index("sdk_movies")
    check(False, "index is gone")
except meilisearch.errors.MeilisearchApiError as e:
    check(e.code == "index_not_found", f"index is gone ({e.code})")
print("python SDK flow: all good")
