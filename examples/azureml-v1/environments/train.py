"""The training script of the environment examples: it reports which Python and
environment variables it got, and writes a small model file into ./outputs."""

import os
import sys

print("python:", sys.executable)
print("MODE:", os.environ.get("MODE", "<unset>"))
os.makedirs("outputs", exist_ok=True)
with open(os.path.join("outputs", "model.txt"), "w") as handle:
    handle.write("mode={}\n".format(os.environ.get("MODE", "")))
