"""Print a hubsim fault (JSON) that answers listings of DIR in BUCKET with the real recursive
listing plus entries a hostile or broken Hub could send: paths leaving the directory, absolute
paths, empty and dot components, NUL, over-long names, a file listed twice, a file inside a
file, sizes no file can have, types to come. The mount must leave every one of them out.

  hostile_listing.py EP BUCKET DIR
"""
import copy
import json
import sys
import urllib.request

ep, bucket, top = sys.argv[1:]
req = urllib.request.Request(f"{ep}/api/buckets/{bucket}/tree/{top}?recursive=true",
                             headers={"authorization": "Bearer alice-token"})
real = json.load(urllib.request.urlopen(req))
files = [e for e in real if e.get("type") == "file"]
assert files, f"{top} has no files to imitate"
good = files[0]


def like(path, **changes):
    entry = copy.deepcopy(good)
    entry["path"] = path
    entry.update(changes)
    return entry


hostile = [
    like(f"{top}/../victim.txt"),
    like(f"{top}/x/../../other/ok.txt"),
    like(f"/{top}/abs.txt"),
    like(f"{top}//empty-component.txt"),
    like(f"{top}/./dot.txt"),
    like(f"{top}/nul\u0000name.txt"),
    like(f"{top}/" + "n" * 300),
    like(good["path"], size=good["size"] + 1),  # listed twice: the first stands
    like(good["path"] + "/inside-a-file.txt"),
    like(f"{top}/huge.bin", size=2**63),
    like(f"{top}/negative.bin", size=-1),
    like(f"{top}/future", type="hologram"),
    {"type": "file", "size": 1},  # no path at all
]
print(json.dumps({"path_contains": f"/tree/{top}", "count": 1000, "body": json.dumps(real + hostile)}))
