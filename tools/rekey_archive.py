"""Re-key the run archive from source hashes to result versions, once (see tests/test_golden.py).

An entry is re-keyed only when its identity's "code" is exactly the source hash of the code at the last commit that
keyed by source (the code that computed it is the code of today, whose outputs the golden tests now record); its
record and provenance are kept, with the file it came from. Any other entry was computed by older code: it stays as it
is, unread. Run from the project root: python tools/rekey_archive.py results/paper/runs
"""

import gzip
import json
import sys
from pathlib import Path

from encoderec.core.io import write_bytes
from encoderec.pipeline import archive, runs

# io.code_version of each computing module at the last commit keyed by source
SOURCE_HASHES = {"unisrec": "d756598c2ae570236ce143dd195e911257b40201d575d864074795dff176fcbd",
                 "tiger": "c237d9ee7ce04fad7ee12745881c468a31335bf077df0f1772cdc5ea82c9e52d",
                 "semantic_ids": "b816a53cb4989d8a3e1da1b4218c5a908b50bb4e2fb2fb64136f58d5681d437b",
                 "retrieval": "70396a4233ffa5a8025f0b46ce78fce35e41fbf6313593024b5c578e41c30fa3",
                 "space": "0f3f53cd7f4d4f7b8324c3c347e0158818d0215235bf6c5ee654a3b8a1a8186b"}
COMPUTED = {"retrieval": ["encoding", "retrieval"], "semantic_ids": ["encoding", "semantic_ids"],
            "umap": ["encoding", "space"], "unisrec": ["encoding", "unisrec"],
            "tiger": ["encoding", "semantic_ids", "tiger"]}


def rekey(folder: Path) -> dict[str, int]:
    counts = {"re-keyed": 0, "older code, left as is": 0, "no code in the key": 0}
    for old in sorted(folder.glob("*/*/*.json.gz")):
        entry = json.loads(gzip.decompress(old.read_bytes()))
        identity = entry["identity"]
        if "code" not in identity:
            counts["no code in the key"] += 1
            continue
        if any(SOURCE_HASHES.get(module) != digest for module, digest in identity["code"].items()):
            counts["older code, left as is"] += 1
            continue
        kind = old.parent.parent.name
        computed = [c for c in COMPUTED[kind] if c != "encoding" or identity.get("text")]
        new_identity = {k: v for k, v in identity.items() if k != "code"} | {"versions": runs.versions(*computed)}
        name = old.name[: -len("-0123456789abcdef.json.gz")]
        new = old.parent / f"{name}-{archive.key(new_identity)[:16]}.json.gz"
        entry = {"identity": new_identity, "record": entry["record"],
                 "provenance": entry["provenance"] | {"rekeyed_from": old.name}}
        write_bytes(new, gzip.compress(json.dumps(entry).encode("utf-8"), mtime=0))
        old.unlink()
        counts["re-keyed"] += 1
    return counts


if __name__ == "__main__":
    print(rekey(Path(sys.argv[1])))
