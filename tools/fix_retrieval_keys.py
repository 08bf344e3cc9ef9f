"""Correct the one-time re-key of the archive's Table 1 rankings: their identity lacked the encoding's version."""

Run once from the project root after tools/rekey_archive.py, which left "encoding" out of the Table 1 rankings'
identity (it looked for a "text" key that only recommender runs have).
import gzip, json, sys
from pathlib import Path
from encoderec.pipeline import archive, runs
from encoderec.core.io import write_bytes

n = 0
for old in sorted(Path("results/paper/runs/retrieval").glob("*/*.json.gz")):
    entry = json.loads(gzip.decompress(old.read_bytes()))
    identity = entry["identity"]
    if identity.get("versions") != {"retrieval": 1}:
        continue
    identity = identity | {"versions": runs.versions("encoding", "retrieval")}
    name = old.name[: -len("-0123456789abcdef.json.gz")]
    new = old.parent / f"{name}-{archive.key(identity)[:16]}.json.gz"
    write_bytes(new, gzip.compress(json.dumps(entry | {"identity": identity}).encode("utf-8"), mtime=0))
    old.unlink()
    n += 1
print(n, "re-keyed")
