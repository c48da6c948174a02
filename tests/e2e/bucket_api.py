"""Cross-checks of a bucket through the real Python client (not through the mount).

  bucket_api.py EP BUCKET tree              -> "path size xetHash" per file, sorted
  bucket_api.py EP BUCKET sums              -> sha256sum-style lines for every file (downloaded)
  bucket_api.py EP BUCKET cat PATH          -> the file's bytes on stdout
  bucket_api.py EP BUCKET put PATH TEXT     -> add/overwrite a file with TEXT
  bucket_api.py EP BUCKET rm PATH           -> delete a file
"""
import hashlib
import os
import sys
import tempfile

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
from huggingface_hub import HfApi  # noqa: E402

ep, bucket, cmd, *args = sys.argv[1:]
api = HfApi(endpoint=ep, token=os.environ.get("HF_TOKEN", "alice-token"))
files = lambda: sorted((f for f in api.list_bucket_tree(bucket) if hasattr(f, "xet_hash")), key=lambda f: f.path)

if cmd == "tree":
    try:
        for f in files():
            print(f.path, f.size, f.xet_hash)
    except BrokenPipeError:  # a reader like `grep -q` stopped early: fine
        sys.stdout = None
elif cmd in ("sums", "cat"):
    with tempfile.TemporaryDirectory() as tmp:
        wanted = [f.path for f in files()] if cmd == "sums" else [args[0]]
        api.download_bucket_files(bucket, [(p, os.path.join(tmp, "f", p)) for p in wanted], raise_on_missing_files=True)
        for p in wanted:
            data = open(os.path.join(tmp, "f", p), "rb").read()
            if cmd == "cat":
                sys.stdout.buffer.write(data)
            else:
                print(f"{hashlib.sha256(data).hexdigest()}  ./{p}")
elif cmd == "put":
    api.batch_bucket_files(bucket, add=[(args[1].encode(), args[0])])
elif cmd == "rm":
    api.batch_bucket_files(bucket, delete=[args[0]])
else:
    sys.exit(f"unknown command {cmd}")
