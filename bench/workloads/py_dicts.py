# A real program: Debian's python3 (unmodified, its own pymalloc for small objects,
# glibc malloc for everything bigger) building a list of dicts, sorting it, grouping
# it and serialising it. Prints a digest so runs can be compared.
import hashlib
import json
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
rows = []
for i in range(n):
    rows.append({
        "id": i,
        "name": "user%07d" % ((i * 7919) % n),
        "score": (i * 2654435761) % 1000003 / 7.0,
        "tags": ["t%d" % (i % 13), "g%d" % (i % 7)],
    })
rows.sort(key=lambda r: (r["name"], -r["score"]))
groups = {}
for r in rows:
    groups.setdefault(r["tags"][0], []).append(r["id"])
blob = json.dumps(rows[: n // 4]).encode()
print(len(rows), len(groups), hashlib.sha256(blob).hexdigest())
