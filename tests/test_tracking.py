"""MLflow logging in a run ends up in the run's details and in the workspace's store."""

from __future__ import annotations

import os

from targets.workspace import Workspace


def test_mlflow_params_and_metrics_come_back(project, cli, write):
    write(
        project / "train.py",
        """
import mlflow
with mlflow.start_run():
    mlflow.log_param("alpha", 0.5)
    for step, loss in enumerate([0.9, 0.4, 0.2]):
        mlflow.log_metric("loss", loss, step=step)
    with open("model.txt", "w") as fh:
        fh.write("weights")
    mlflow.log_artifact("model.txt")
print("logged")
""",
    )
    result = cli("run", "train.py", "-e", "tracked")
    assert result.code == 0, result
    run_id = Workspace(project).ledger.list(limit=1)[0].id
    shown = cli("runs", "show", run_id, "-o", "json").json()
    assert shown["params"] == {"alpha": "0.5"}
    assert shown["metrics"] == {"loss": 0.2}
    table = cli("runs", "show", run_id)
    assert "alpha=0.5" in table.out and "loss=0.2" in table.out

    # The workspace store is a real MLflow store: what `mlflow ui` shows.
    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    client = MlflowClient(tracking_uri=(project / ".targets" / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("tracked")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params == {"alpha": "0.5"}
    assert run.data.metrics == {"loss": 0.2}
    assert run.data.tags["targets.run_id"] == run_id
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert artifacts == ["model.txt"]


def test_a_run_that_names_its_own_tracking_uri_keeps_it(project, cli, write, tmp_path):
    own = tmp_path / "own-store"
    write(project / "t.py", "import os\nprint(os.environ['MLFLOW_TRACKING_URI'])\n")
    write(
        project / "rc.yml",
        "script: t.py\nenvironment_variables:\n"
        f"  MLFLOW_TRACKING_URI: file://{own}\n"
        "environment: {python: {user_managed_dependencies: true}}\n",
    )
    result = cli("run", "rc.yml")
    assert result.code == 0, result
    assert result.out.strip() == f"file://{own}"
