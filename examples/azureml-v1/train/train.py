"""An Azure ML v1 training script, unchanged: it logs through ``Run.get_context()`` in
every way the run library supports. Run it with ``targets run train.py`` on any target;
``targets runs show RUN`` then lists its metrics."""

import argparse
import os

from azureml.core import Run
from azureml.core.run import Run as RunFromModule

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float, default=0.5)
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()

run = Run.get_context()
assert run is RunFromModule.get_context()
print("run", run.id, "experiment", run.experiment.name, "status", run.get_status())

loss = 1.0
for epoch in range(args.epochs):
    loss *= 1.0 - args.alpha
    run.log("loss", loss, description="training loss per epoch")
    run.log_row("epochs", epoch=epoch, loss=loss)
run.log("accuracy", 0.9)
run.log("optimizer", "sgd")  # a string: recorded, not an MLflow metric
run.log_list("lr_schedule", [0.1, 0.05, 0.01])
run.log_table("confusion", {"label": [0, 1], "count": [7, 3]})

run.tag("framework", "none")
run.tag("quick")
run.set_tags({"alpha": str(args.alpha)})
print("tags", sorted(run.get_tags().items()))

os.makedirs("model", exist_ok=True)
with open(os.path.join("model", "weights.txt"), "w") as fh:
    fh.write(f"loss={loss}\n")
with open(os.path.join("model", "config.txt"), "w") as fh:
    fh.write(f"alpha={args.alpha}\n")
run.upload_file("outputs/weights.txt", os.path.join("model", "weights.txt"))
run.upload_folder("model", "model")

# A 1x1 PNG, so the script needs no plotting package.
png = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)
with open("plot.png", "wb") as fh:
    fh.write(png)
run.log_image("curve", path="plot.png")

child = run.child_run("evaluate")
child.log("auc", 0.8)
print("children", [c.id for c in run.get_children()], "parent", run.parent)
child.complete()

print("metrics", sorted(run.get_metrics()))
run.complete()
