"""Reading Azure ML v2 job YAMLs: every corpus file, and bad input."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from targets.errors import ConfigError
from targets.jobs import bindings
from targets.jobs.bindings import (
    BindingError,
    pipeline_graph,
    references,
    render,
    topological_levels,
    upgrade_legacy,
)
from targets.jobs.model import (
    BanditPolicy,
    Choice,
    CommandJob,
    CommandNode,
    InlineEnvironment,
    JobInput,
    JobOutput,
    PipelineJob,
    PyTorchDistribution,
    SweepJob,
    TruncationSelectionPolicy,
)
from targets.jobs.overrides import apply_overrides
from targets.jobs.reader import LoadedJob, load_job

DATA = Path(__file__).parent / "data"
CORPUS = DATA / "azureml-corpus" / "v2" / "azureml-examples" / "cli" / "jobs"
FIXTURE = DATA / "jobs-fixture"
CORPUS_FILES = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.yml"))

REGISTRY_ENV = "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"
PYTHON_LATEST = {"image": "library/python:latest"}


def corpus_copy(tmp_path: Path, relative: str) -> Path:
    """Copy a corpus job into ``tmp_path`` (same relative layout) with the fixture
    scripts its ``code:`` folder needs; returns the copied YAML."""
    target = tmp_path / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CORPUS / relative, target)
    src = FIXTURE / Path(relative).parent / "src"
    if src.is_dir() and not (target.parent / "src").exists():
        shutil.copytree(src, target.parent / "src")
    return target


def write(tmp_path: Path, text: str, name: str = "job.yml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_error(path: Path, overrides: tuple[str, ...] = ()) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_job(path, overrides=overrides)
    return info.value


# ------------------------------------------------------------------ summaries --------


def _input(value: Any) -> Any:
    if isinstance(value, JobInput):
        return {k: v for k, v in value.model_dump().items() if v is not None}
    return value


def _output(value: Any) -> Any:
    if isinstance(value, JobOutput):
        return {k: v for k, v in value.model_dump().items() if v is not None}
    return value


def _environment(value: Any) -> Any:
    if isinstance(value, InlineEnvironment):
        return value.model_dump(exclude_defaults=True)
    return value


def summary(loaded: LoadedJob) -> dict[str, Any]:
    """The values a job maps to, as plain data, for comparing with the expectations."""
    job = loaded.job
    out: dict[str, Any] = {"type": job.type}
    for key in ("display_name", "experiment_name", "compute"):
        if getattr(job, key) is not None:
            out[key] = getattr(job, key)
    if job.tags:
        out["tags"] = job.tags
    if job.inputs:
        out["inputs"] = {k: _input(v) for k, v in job.inputs.items()}
    if job.outputs:
        out["outputs"] = {k: _output(v) for k, v in job.outputs.items()}
    if isinstance(job, CommandJob):
        out["command"] = job.command
        out["environment"] = _environment(job.environment)
        if job.code is not None:
            out["code"] = job.code
        if job.environment_variables:
            out["environment_variables"] = job.environment_variables
    elif isinstance(job, SweepJob):
        out["trial"] = {
            "command": job.trial.command,
            "code": job.trial.code,
            "environment": _environment(job.trial.environment),
        }
        out["sampling_algorithm"] = job.sampling_algorithm.type
        out["search_space"] = {k: v.model_dump() for k, v in job.search_space.items()}
        out["objective"] = job.objective.model_dump()
        out["limits"] = job.limits.model_dump(exclude_none=True)
    else:
        assert isinstance(job, PipelineJob)
        settings = job.settings.model_dump(exclude_none=True)
        if settings:
            out["settings"] = settings
        nodes: dict[str, Any] = {}
        for name, node in job.jobs.items():
            assert isinstance(node, CommandNode)
            entry: dict[str, Any] = {
                "command": node.command,
                "environment": _environment(node.environment),
                "compute": job.node_compute(name),
            }
            if node.inputs:
                entry["inputs"] = {k: _input(v) for k, v in node.inputs.items()}
            if node.outputs:
                entry["outputs"] = {k: _output(v) for k, v in node.outputs.items()}
            nodes[name] = entry
        out["jobs"] = nodes
        graph = pipeline_graph(job)
        out["graph"] = {k: sorted(v) for k, v in graph.items()}
        out["levels"] = topological_levels(graph)
    return out


_IRIS_FILE_COMMAND = (
    'echo "--iris-csv: ${{inputs.iris_csv}}"\n'
    "python hello-iris.py --iris-csv ${{inputs.iris_csv}}\n"
)
_IRIS_FOLDER_COMMAND = (
    "ls ${{inputs.data_dir}}\n"
    'echo "--iris-csv: ${{inputs.data_dir}}/iris.csv"\n'
    "python hello-iris.py --iris-csv ${{inputs.data_dir}}/iris.csv\n"
)
_ABC_JOBS = {
    "a": {
        "command": "echo hello ${{inputs.hello_string}}",
        "environment": REGISTRY_ENV,
        "inputs": {"hello_string": "${{parent.inputs.hello_string_top_level_input}}"},
    },
    "b": {
        "command": 'echo "world" >> ${{outputs.world_output}}/world.txt',
        "environment": REGISTRY_ENV,
        "outputs": {"world_output": None},
    },
    "c": {
        "command": "echo ${{inputs.world_input}}/world.txt",
        "environment": REGISTRY_ENV,
        "inputs": {"world_input": "${{parent.jobs.b.outputs.world_output}}"},
    },
}
_IO_JOBS = {
    "hello_job": {
        "command": 'echo "hello" && echo "world" > ${{outputs.world_output}}/world.txt',
        "environment": REGISTRY_ENV,
        "outputs": {"world_output": None},
    },
    "world_job": {
        "command": "cat ${{inputs.world_input}}/world.txt",
        "environment": REGISTRY_ENV,
        "inputs": {"world_input": "${{parent.jobs.hello_job.outputs.world_output}}"},
    },
}
_ARTIFACTS_JOBS = {
    "hello_job": {
        "command": 'echo "hello" && echo "world" > ./outputs/world.txt',
        "environment": REGISTRY_ENV,
        "outputs": {"artifacts": None},
    },
    "world_job": {
        "command": "cat ${{inputs.world_input}}/outputs/world.txt",
        "environment": REGISTRY_ENV,
        "inputs": {"world_input": "${{parent.jobs.hello_job.outputs.artifacts}}"},
    },
}
_HELLO_WORLD_JOBS = {
    "hello_job": {"command": 'echo "hello"', "environment": REGISTRY_ENV},
    "world_job": {"command": 'echo "world"', "environment": REGISTRY_ENV},
}
_SETTINGS_JOBS = {
    "hello_job": {"command": 'echo 202204190 & echo "hello"', "environment": REGISTRY_ENV},
    "world_job": {"command": 'echo 202204190 & echo "hello"', "environment": REGISTRY_ENV},
}
_FILE_OUTPUT = {
    "type": "uri_file",
    "path": "azureml://datastores/workspaceblobstore/paths/${{name}}/hello_world.txt",
    "mode": "rw_mount",
}
_FILE_OUTPUT_JOBS = {
    "hello_world": {
        "command": 'echo "hello" && echo "world" > ${{outputs.output}}',
        "environment": REGISTRY_ENV,
        "outputs": {"output": "${{parent.outputs.output}}"},
    }
}
_FOLDER_OUTPUT_JOBS = {
    "hello_world": {
        "command": 'echo "hello" && echo "world" > ${{outputs.output}}/hello_world-folder.txt',
        "environment": REGISTRY_ENV,
        "outputs": {
            "output": {
                "type": "uri_folder",
                "path": "azureml://datastores/workspaceblobstore/paths/${{name}}/",
            }
        },
    }
}


def _nodes(jobs: dict[str, Any], compute: str) -> dict[str, Any]:
    return {name: {**node, "compute": compute} for name, node in jobs.items()}


def _pipeline(
    display_name: str,
    jobs: dict[str, Any],
    compute: str,
    graph: dict[str, list[str]],
    levels: list[list[str]],
    **extra: Any,
) -> dict[str, Any]:
    return {
        "type": "pipeline",
        "display_name": display_name,
        **extra,
        "jobs": _nodes(jobs, compute),
        "graph": graph,
        "levels": levels,
    }


CPU = "azureml:cpu-cluster"
SERVERLESS = "azureml:serverless"
_ABC_GRAPH = {"a": [], "b": [], "c": ["b"]}
_ABC_LEVELS = [["a", "b"], ["c"]]
_IO_GRAPH = {"hello_job": [], "world_job": ["hello_job"]}
_IO_LEVELS = [["hello_job"], ["world_job"]]
_FLAT_GRAPH: dict[str, list[str]] = {"hello_job": [], "world_job": []}
_FLAT_LEVELS = [["hello_job", "world_job"]]

EXPECTED: dict[str, dict[str, Any]] = {
    "basics/hello-iris-datastore-file.yml": {
        "type": "command",
        "inputs": {
            "iris_csv": {
                "type": "uri_file",
                "path": "azureml://datastores/workspaceblobstore/paths/example-data/iris.csv",
            }
        },
        "command": _IRIS_FILE_COMMAND,
        "environment": REGISTRY_ENV,
        "code": "src",
    },
    "basics/hello-iris-datastore-folder.yml": {
        "type": "command",
        "inputs": {
            "data_dir": {
                "type": "uri_folder",
                "path": "azureml://datastores/workspaceblobstore/paths/example-data/",
            }
        },
        "command": _IRIS_FOLDER_COMMAND,
        "environment": REGISTRY_ENV,
        "code": "src",
    },
    "basics/hello-iris-file.yml": {
        "type": "command",
        "inputs": {
            "iris_csv": {
                "type": "uri_file",
                "path": "https://azuremlexamples.blob.core.windows.net/datasets/iris.csv",
            }
        },
        "command": _IRIS_FILE_COMMAND,
        "environment": REGISTRY_ENV,
        "code": "src",
    },
    "basics/hello-iris-folder.yml": {
        "type": "command",
        "inputs": {
            "data_dir": {
                "type": "uri_folder",
                "path": "wasbs://datasets@azuremlexamples.blob.core.windows.net/",
            }
        },
        "command": _IRIS_FOLDER_COMMAND,
        "environment": REGISTRY_ENV,
        "code": "src",
    },
    # The sample's bug, kept as the SDK reads it: `type` is a literal input named "type".
    "basics/hello-iris-literal.yml": {
        "type": "command",
        "inputs": {
            "type": "uri_file",
            "iris_csv": "https://azuremlexamples.blob.core.windows.net/datasets/iris.csv",
        },
        "command": _IRIS_FILE_COMMAND,
        "environment": REGISTRY_ENV,
        "code": "src",
    },
    "basics/hello-mlflow.yml": {
        "type": "command",
        "command": "python hello-mlflow.py",
        "environment": REGISTRY_ENV,
        "code": "src",
    },
    "basics/hello-pipeline-abc-serverless.yml": _pipeline(
        "hello_pipeline_abc",
        _ABC_JOBS,
        SERVERLESS,
        _ABC_GRAPH,
        _ABC_LEVELS,
        inputs={"hello_string_top_level_input": "hello world"},
        settings={"default_compute": SERVERLESS},
    ),
    "basics/hello-pipeline-abc.yml": _pipeline(
        "hello_pipeline_abc",
        _ABC_JOBS,
        CPU,
        _ABC_GRAPH,
        _ABC_LEVELS,
        inputs={"hello_string_top_level_input": "hello world"},
        settings={"default_compute": CPU},
    ),
    "basics/hello-pipeline-customize-output-file-serverless.yml": _pipeline(
        "hello_pipeline_customize_output_file",
        _FILE_OUTPUT_JOBS,
        SERVERLESS,
        {"hello_world": []},
        [["hello_world"]],
        outputs={"output": _FILE_OUTPUT},
        settings={"default_compute": SERVERLESS},
    ),
    "basics/hello-pipeline-customize-output-file.yml": _pipeline(
        "hello_pipeline_customize_output_file",
        _FILE_OUTPUT_JOBS,
        CPU,
        {"hello_world": []},
        [["hello_world"]],
        outputs={"output": _FILE_OUTPUT},
    ),
    "basics/hello-pipeline-customize-output-folder-serverless.yml": _pipeline(
        "hello_pipeline_customize_output_folder",
        _FOLDER_OUTPUT_JOBS,
        SERVERLESS,
        {"hello_world": []},
        [["hello_world"]],
        settings={"default_compute": SERVERLESS},
    ),
    "basics/hello-pipeline-customize-output-folder.yml": _pipeline(
        "hello_pipeline_customize_output_folder",
        _FOLDER_OUTPUT_JOBS,
        CPU,
        {"hello_world": []},
        [["hello_world"]],
        settings={"default_compute": CPU},
    ),
    "basics/hello-pipeline-default-artifacts-serverless.yml": _pipeline(
        "hello_pipeline_default_artifacts",
        _ARTIFACTS_JOBS,
        SERVERLESS,
        _IO_GRAPH,
        _IO_LEVELS,
        settings={"default_compute": SERVERLESS},
    ),
    "basics/hello-pipeline-default-artifacts.yml": _pipeline(
        "hello_pipeline_default_artifacts", _ARTIFACTS_JOBS, CPU, _IO_GRAPH, _IO_LEVELS
    ),
    "basics/hello-pipeline-io-serverless.yml": _pipeline(
        "hello_pipeline_io",
        _IO_JOBS,
        SERVERLESS,
        _IO_GRAPH,
        _IO_LEVELS,
        settings={"default_compute": SERVERLESS},
    ),
    "basics/hello-pipeline-io.yml": _pipeline(
        "hello_pipeline_io", _IO_JOBS, CPU, _IO_GRAPH, _IO_LEVELS
    ),
    "basics/hello-pipeline-serverless.yml": _pipeline(
        "hello_pipeline",
        _HELLO_WORLD_JOBS,
        SERVERLESS,
        _FLAT_GRAPH,
        _FLAT_LEVELS,
        settings={"default_compute": SERVERLESS},
    ),
    "basics/hello-pipeline-settings-serverless.yml": _pipeline(
        "hello_pipeline_settings",
        _SETTINGS_JOBS,
        SERVERLESS,
        _FLAT_GRAPH,
        _FLAT_LEVELS,
        settings={"default_compute": SERVERLESS, "default_datastore": "azureml:workspaceblobstore"},
    ),
    "basics/hello-pipeline-settings.yml": _pipeline(
        "hello_pipeline_settings",
        _SETTINGS_JOBS,
        CPU,
        _FLAT_GRAPH,
        _FLAT_LEVELS,
        settings={"default_compute": CPU, "default_datastore": "azureml:workspaceblobstore"},
    ),
    "basics/hello-pipeline.yml": _pipeline(
        "hello_pipeline", _HELLO_WORLD_JOBS, CPU, _FLAT_GRAPH, _FLAT_LEVELS
    ),
    "basics/hello-sweep.yml": {
        "type": "sweep",
        "display_name": "hello-sweep-example",
        "experiment_name": "hello-sweep-example",
        "inputs": {"A": 0.5},
        "trial": {
            "command": "python hello-sweep.py --A ${{inputs.A}} --B ${{search_space.B}} "
            "--C ${{search_space.C}}",
            "code": "src",
            "environment": "azureml:AzureML-sklearn-1.5@latest",
        },
        "sampling_algorithm": "random",
        "search_space": {
            "B": {"type": "choice", "values": ["hello", "world", "hello_world"]},
            "C": {"type": "uniform", "min_value": 0.1, "max_value": 1.0},
        },
        "objective": {"primary_metric": "random_metric", "goal": "minimize"},
        "limits": {"max_total_trials": 4, "max_concurrent_trials": 2, "timeout": 3600},
    },
    "basics/hello-world-env-var.yml": {
        "type": "command",
        "command": "echo $hello_env_var",
        "environment": PYTHON_LATEST,
        "environment_variables": {"hello_env_var": "hello world"},
    },
    "basics/hello-world-input.yml": {
        "type": "command",
        "inputs": {"hello_string": "hello world", "hello_number": 42},
        "command": "echo ${{inputs.hello_string}}\necho ${{inputs.hello_number}}\n",
        "environment": PYTHON_LATEST,
    },
    "basics/hello-world-org.yml": {
        "type": "command",
        "display_name": "hello-world-example",
        "experiment_name": "hello-world-example",
        "tags": {"hello": "world"},
        "command": 'echo "hello world"',
        "environment": PYTHON_LATEST,
    },
    "basics/hello-world-output-data.yml": {
        "type": "command",
        "outputs": {"hello_output": None},
        "command": 'echo "hello world" > ${{outputs.hello_output}}/helloworld.txt',
        "environment": {"image": "python"},
    },
    "basics/hello-world-output.yml": {
        "type": "command",
        "command": 'echo "hello world" > ./outputs/helloworld.txt',
        "environment": PYTHON_LATEST,
    },
    "basics/hello-world.yml": {
        "type": "command",
        "command": 'echo "hello world"',
        "environment": PYTHON_LATEST,
    },
    "single-step/scikit-learn/iris/job.yml": {
        "type": "command",
        "display_name": "sklearn-iris-example",
        "experiment_name": "sklearn-iris-example",
        "compute": CPU,
        "inputs": {
            "iris_csv": {
                "type": "uri_file",
                "path": "wasbs://datasets@azuremlexamples.blob.core.windows.net/iris.csv",
            },
            "C": 0.8,
            "kernel": "rbf",
            "coef0": 0.1,
        },
        "command": "python main.py  --iris-csv ${{inputs.iris_csv}} --C ${{inputs.C}} "
        "--kernel ${{inputs.kernel}} --coef0 ${{inputs.coef0}}",
        "environment": REGISTRY_ENV,
        "code": "src",
    },
}


def test_public_api_is_pinned() -> None:
    import targets.jobs

    assert targets.jobs.__all__ == [
        "CommandJob",
        "Job",
        "LoadedJob",
        "PipelineJob",
        "Reference",
        "SparkJob",
        "SweepJob",
        "apply_overrides",
        "load_job",
        "pipeline_graph",
        "references",
        "render",
        "topological_levels",
    ]
    for name in targets.jobs.__all__:
        assert getattr(targets.jobs, name) is not None


def test_every_corpus_file_has_an_expectation() -> None:
    assert len(CORPUS_FILES) >= 28
    assert sorted(EXPECTED) == CORPUS_FILES


@pytest.mark.parametrize("relative", CORPUS_FILES)
def test_corpus_file_loads_with_its_values(tmp_path: Path, relative: str) -> None:
    path = corpus_copy(tmp_path, relative)
    loaded = load_job(path)
    assert summary(loaded) == EXPECTED[relative]
    assert loaded.path == path
    assert loaded.base_dir == path.parent
    assert loaded.warnings == ()


@pytest.mark.parametrize(
    "relative", [r for r in CORPUS_FILES if "code" in EXPECTED[r] or r.endswith("sweep.yml")]
)
def test_corpus_code_folders_resolve_to_fixture_scripts(tmp_path: Path, relative: str) -> None:
    loaded = load_job(corpus_copy(tmp_path, relative))
    code = loaded.code_dir()
    assert code == loaded.path.parent / "src"
    job = loaded.job
    command = job.trial.command if isinstance(job, SweepJob) else job.command  # type: ignore[union-attr]
    script = next(word for word in command.split() if word.endswith(".py"))
    assert (code / script).is_file()


def test_corpus_without_code_folder_names_it(tmp_path: Path) -> None:
    relative = "basics/hello-mlflow.yml"
    target = tmp_path / "hello-mlflow.yml"
    shutil.copyfile(CORPUS / relative, target)
    error = load_error(target)
    assert error.key_path == "code"
    assert error.line == 3
    assert "'src' not found" in str(error)
    assert str(tmp_path / "src") in str(error)


def test_corpus_sweep_code_is_checked_under_trial(tmp_path: Path) -> None:
    target = tmp_path / "hello-sweep.yml"
    shutil.copyfile(CORPUS / "basics/hello-sweep.yml", target)
    error = load_error(target)
    assert error.key_path == "trial.code"
    assert error.line == 9


def test_schema_key_and_read_only_keys_are_dropped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
        id: azureml:/subscriptions/x/jobs/y
        status: Completed
        creation_context: {created_by: someone}
        log_files: {}
        parameters: {}
        command: echo hi
        environment: azureml:env:1
        """,
    )
    job = load_job(path).job
    assert isinstance(job, CommandJob)
    assert job.environment == "azureml:env:1"


def test_pipeline_node_compute_precedence(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        type: pipeline
        compute: azureml:pipeline-level
        settings:
          default_compute: azureml:default
          continue_on_step_failure: true
          my_extra_setting: kept
        jobs:
          own:
            command: echo 1
            environment: azureml:e:1
            compute: azureml:own
          inherited:
            command: echo 2
            environment: azureml:e:1
        """,
    )
    job = load_job(path).job
    assert isinstance(job, PipelineJob)
    assert job.node_compute("own") == "azureml:own"
    assert job.node_compute("inherited") == "azureml:pipeline-level"
    assert job.settings.continue_on_step_failure is True
    assert job.settings.model_extra == {"my_extra_setting": "kept"}
    assert job.jobs["own"].name == "own"


# ------------------------------------------------------------------ job types --------


def test_type_absent_is_command(tmp_path: Path) -> None:
    job = load_job(write(tmp_path, "command: echo hi\nenvironment: azureml:e:1\n")).job
    assert isinstance(job, CommandJob)
    assert job.type == "command"


@pytest.mark.parametrize("kind", ["automl", "import", "finetuning", "distillation"])
def test_sdk_only_job_type_is_refused(tmp_path: Path, kind: str) -> None:
    error = load_error(write(tmp_path, f"type: {kind}\ntask: classification\n"))
    assert error.line == 1
    assert error.key_path == "type"
    assert (
        f"{kind} jobs are not supported: targets runs command, sweep, pipeline, spark jobs"
        in str(error)
    )
    assert error.exit_code == 2


def test_capitalised_type_is_an_error_like_the_sdk(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "type: Command\ncommand: echo\nenvironment: azureml:e:1\n"))
    assert "unsupported job type 'Command'" in str(error)
    assert "command, sweep, pipeline" in str(error)
    assert "type: command" in str(error)  # the hint


def test_unknown_type_lists_supported_types(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "type: banana\n"))
    assert (
        "unsupported job type 'banana': targets runs command, sweep, pipeline, spark jobs"
        in str(error)
    )


def test_unsupported_pipeline_node_type(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        type: pipeline
        jobs:
          prep:
            type: automl
            task: classification
        """,
    )
    error = load_error(path)
    assert error.key_path == "jobs.prep.type"
    assert error.line == 4
    assert (
        "automl steps are not supported: targets runs command, sweep, spark, parallel steps"
        in str(error)
    )


def test_a_missing_component_file_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        type: pipeline
        jobs:
          train:
            component: ./train.yml
        """,
    )
    error = load_error(path)
    assert error.key_path == "jobs.train.component"
    assert "component file './train.yml' not found" in str(error)


# ------------------------------------------------------------------ unknown keys -----


def test_unknown_top_level_key_suggests_and_has_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        command: echo hi
        environment: azureml:e:1
        experiment_nam: x
        """,
    )
    error = load_error(path)
    assert error.line == 3
    assert error.key_path == "experiment_nam"
    assert "unknown key 'experiment_nam' (did you mean 'experiment_name'?)" in str(error)


def test_unknown_key_in_pipeline_node_suggests(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        type: pipeline
        jobs:
          hello_job:
            command: echo hi
            enviroment: azureml:e:1
        """,
    )
    error = load_error(path)
    assert error.line == 5
    assert error.key_path == "jobs.hello_job.enviroment"
    assert "(did you mean 'environment'?)" in str(error)


def test_unknown_key_in_search_space_and_input_suggest(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        type: sweep
        trial: {command: "python t.py --x ${{search_space.x}}", environment: azureml:e:1}
        inputs:
          data: {type: uri_folder, path: ./data, mdoe: download}
        search_space:
          x: {type: uniform, min_value: 0, max_valeu: 1}
        objective: {primary_metric: m, goal: maximize}
        limits: {max_total_trials: 2}
        """,
    )
    error = load_error(path)
    text = str(error)
    assert error.line == 4
    assert "unknown key 'mdoe' (did you mean 'mode'?)" in text
    assert f"{path}:6: search_space.x.max_valeu: unknown key 'max_valeu'" in text
    assert "(did you mean 'max_value'?)" in text


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "command: a\ncommand: b\nenvironment: azureml:e:1\n"))
    assert error.line == 2
    assert "duplicate key 'command'" in str(error)


def test_conda_keys_in_environment_are_misplaced(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        command: echo
        environment:
          image: python
          dependencies: [numpy]
        """,
    )
    error = load_error(path)
    assert error.key_path == "environment.dependencies"
    assert "goes in the conda file" in str(error)


def test_inline_environment_needs_image_or_build(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "command: echo\nenvironment: {os_type: linux}\n"))
    assert "an inline environment needs an 'image' or a 'build'" in str(error)
    assert error.key_path == "environment"


def test_inline_environment_name_and_version_warn(tmp_path: Path) -> None:
    (tmp_path / "conda.yml").write_text("dependencies: [python=3.11]\n")
    path = write(
        tmp_path,
        """\
        command: echo
        environment:
          image: python:3.11
          conda_file: conda.yml
          name: my-env
          version: 1
        """,
    )
    loaded = load_job(path)
    assert len(loaded.warnings) == 2
    assert "environment.name: ignored" in loaded.warnings[0]
    assert f"{path}:5" in loaded.warnings[0]
    env = loaded.job.environment  # type: ignore[union-attr]
    assert isinstance(env, InlineEnvironment)
    assert loaded.local_path(str(env.conda_file)) == tmp_path / "conda.yml"


def test_missing_conda_file_is_named(tmp_path: Path) -> None:
    error = load_error(
        write(tmp_path, "command: echo\nenvironment: {image: p, conda_file: env/conda.yml}\n")
    )
    assert error.key_path == "environment.conda_file"
    assert "conda file 'env/conda.yml' not found" in str(error)


def test_unversioned_azureml_code_is_read_as_a_local_path(tmp_path: Path) -> None:
    error = load_error(
        write(tmp_path, "command: echo\nenvironment: azureml:e:1\ncode: azureml:src\n")
    )
    assert error.key_path == "code"
    assert "azureml:<name>:<version>" in str(error)
    remote = write(
        tmp_path, "command: echo\nenvironment: azureml:e:1\ncode: azureml:src:3\n", "r.yml"
    )
    loaded = load_job(remote)
    assert loaded.code_dir() is None


def test_services_identity_queue_settings_are_accepted_with_warnings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        command: echo
        environment: azureml:e:1
        services:
          my_ssh: {type: ssh, ssh_public_keys: "ssh-ed25519 AAAA"}
        identity: {type: user_identity}
        queue_settings: {job_tier: spot}
        """,
    )
    loaded = load_job(path)
    assert [w.split(": ")[1] for w in loaded.warnings] == ["services", "identity", "queue_settings"]


# ------------------------------------------------------------------ enums ------------


def test_enums_are_case_insensitive_and_stripped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        type: sweep
        trial:
          command: python t.py ${{search_space.a}}
          environment: azureml:e:1
          distribution: {type: PyTorch, process_count_per_instance: 2}
        sampling_algorithm: {type: Random, seed: 7, rule: Sobol}
        search_space:
          a: {type: Choice, values: [1, 2]}
        objective: {primary_metric: acc, goal: Maximize}
        limits: {max_total_trials: 2}
        early_termination: {type: TruncationSelection, truncation_percentage: 20}
        inputs:
          d: {type: "URI_FOLDER ", path: ./d, mode: Download}
        """,
    )
    job = load_job(path).job
    assert isinstance(job, SweepJob)
    assert isinstance(job.trial.distribution, PyTorchDistribution)
    assert job.trial.distribution.process_count_per_instance == 2
    assert job.sampling_algorithm.type == "random"
    assert job.sampling_algorithm.model_dump()["rule"] == "sobol"
    assert job.objective.goal == "maximize"
    assert isinstance(job.early_termination, TruncationSelectionPolicy)
    assert job.early_termination.type == "truncation_selection"
    assert isinstance(job.search_space["a"], Choice)
    data = job.inputs["d"]
    assert isinstance(data, JobInput)
    assert (data.type, data.mode) == ("uri_folder", "download")


def test_every_search_space_type_and_policy(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        type: sweep
        trial: {command: python t.py, environment: azureml:e:1}
        sampling_algorithm: bayesian
        search_space:
          c:
            type: choice
            values: [1, "two", {nested: {type: uniform, min_value: 0, max_value: 1}}]
          u: {type: uniform, min_value: 0, max_value: 1}
          lu: {type: loguniform, min_value: -5, max_value: -1}
          qu: {type: quniform, min_value: 1, max_value: 10, q: 1}
          qlu: {type: qloguniform, min_value: 0, max_value: 3, q: 2}
          n: {type: normal, mu: 0, sigma: 1}
          ln: {type: lognormal, mu: 0, sigma: 0.5}
          qn: {type: qnormal, mu: 10, sigma: 2, q: 1}
          qln: {type: qlognormal, mu: 1, sigma: 1, q: 5}
          r: {type: randint, upper: 10}
        objective: {primary_metric: loss, goal: minimize}
        limits: {max_total_trials: 20, max_concurrent_trials: 4, timeout: 600, trial_timeout: 60}
        early_termination:
          {type: bandit, slack_factor: 0.1, evaluation_interval: 1, delay_evaluation: 5}
        """,
    )
    job = load_job(path).job
    assert isinstance(job, SweepJob)
    assert {k: v.type for k, v in job.search_space.items()} == {
        "c": "choice",
        "u": "uniform",
        "lu": "loguniform",
        "qu": "quniform",
        "qlu": "qloguniform",
        "n": "normal",
        "ln": "lognormal",
        "qn": "qnormal",
        "qln": "qlognormal",
        "r": "randint",
    }
    assert job.search_space["qu"].model_dump() == {
        "type": "quniform",
        "min_value": 1.0,
        "max_value": 10.0,
        "q": 1.0,
    }
    assert job.sampling_algorithm.type == "bayesian"
    assert isinstance(job.early_termination, BanditPolicy)
    assert job.early_termination.delay_evaluation == 5
    assert job.limits.trial_timeout == 60


_SWEEP_HEAD = """\
type: sweep
trial: {command: python t.py, environment: azureml:e:1}
objective: {primary_metric: m, goal: minimize}
limits: {max_total_trials: 2}
"""


@pytest.mark.parametrize(
    ("space", "key_path", "message"),
    [
        ("{type: uniform, min_value: 0}", "search_space.x.max_value", "required key 'max_value'"),
        ("{type: choice}", "search_space.x.values", "required key 'values' is missing"),
        ("{type: choice, values: []}", "search_space.x.values", "must not be empty"),
        ("{type: gaussian, mu: 0}", "search_space.x", "unknown type 'gaussian'; expected one of"),
        ("{values: [1]}", "search_space.x", "required key 'type' is missing"),
        ("{type: uniform, min_value: 2, max_value: 1}", "search_space.x", "must be less than"),
        ("{type: normal, mu: 0, sigma: -1}", "search_space.x.sigma", "must be greater than 0"),
        ("{type: randint, upper: 0}", "search_space.x.upper", "must be at least 1"),
        ("{type: quniform, min_value: 0, max_value: 1}", "search_space.x.q", "required key 'q'"),
        ("[1, 2]", "search_space.x", "required key 'type' is missing"),
    ],
)
def test_invalid_search_space(tmp_path: Path, space: str, key_path: str, message: str) -> None:
    path = write(tmp_path, _SWEEP_HEAD + f"search_space:\n  x: {space}\n")
    error = load_error(path)
    assert error.key_path == key_path
    assert error.line == 6
    assert message in str(error)


@pytest.mark.parametrize(
    ("extra", "key_path", "message"),
    [
        ("objective: {primary_metric: m, goal: up}", "objective.goal", "expected one of"),
        ("limits: {max_concurrent_trials: 2}", "limits.max_total_trials", "required key"),
        ("early_termination: {type: bandit}", "early_termination", "exactly one of slack_factor"),
        (
            "early_termination: {type: truncation_selection}",
            "early_termination.truncation_percentage",
            "required key",
        ),
        ("sampling_algorithm: sobol", "sampling_algorithm", "unknown type 'sobol'"),
    ],
)
def test_invalid_sweep_settings(tmp_path: Path, extra: str, key_path: str, message: str) -> None:
    head = _SWEEP_HEAD
    if extra.startswith(("objective", "limits")):
        key = extra.split(":")[0]
        head = "\n".join(line for line in head.splitlines() if not line.startswith(key))
        head += "\n"
    error = load_error(write(tmp_path, head + extra + "\n"))
    assert error.key_path == key_path
    assert message in str(error)


def test_sweep_without_limits_fails_like_the_sdk(tmp_path: Path) -> None:
    head = _SWEEP_HEAD.replace("limits: {max_total_trials: 2}\n", "")
    error = load_error(write(tmp_path, head))
    assert error.key_path == "limits"
    assert "required key 'limits' is missing" in str(error)


# ------------------------------------------------------------------ inputs/outputs ---


def test_input_and_output_forms(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        command: >-
          python x.py ${{inputs.n}} ${{inputs.f}} ${{inputs.b}} ${{inputs.w}} ${{inputs.model}}
          ${{inputs.table}} ${{inputs.p}} ${{outputs.o}} ${{outputs.m}}
        environment: azureml:e:1
        inputs:
          n: 3
          f: 0.25
          b: true
          w: {value: 5}
          folder: {path: ./data}
          model: {type: mlflow_model, path: azureml:my-model:1}
          table: {type: mltable, path: ./t, mode: eval_mount}
          p: {type: integer, default: 4, optional: true}
        outputs:
          o:
          m: {type: mlflow_model, mode: upload, path: ./out}
        """,
    )
    job = load_job(path).job
    assert isinstance(job, CommandJob)
    inputs = job.inputs
    assert (inputs["n"], inputs["f"], inputs["b"]) == (3, 0.25, True)
    assert type(inputs["n"]) is int
    assert isinstance(inputs["w"], JobInput) and inputs["w"].value == 5
    folder = inputs["folder"]
    assert isinstance(folder, JobInput) and (folder.type, folder.path) == ("uri_folder", "./data")
    assert isinstance(inputs["model"], JobInput) and inputs["model"].is_asset
    assert isinstance(inputs["p"], JobInput) and not inputs["p"].is_asset
    assert job.outputs["o"] is None
    assert job.outputs["m"] == JobOutput(type="mlflow_model", mode="upload", path="./out")


@pytest.mark.parametrize(
    ("inputs", "key_path", "message"),
    [
        ("x: {type: uri_blob, path: p}", "inputs.x.type", "expected one of"),
        ("x: {type: uri_file}", "inputs.x", "a uri_file input needs a 'path'"),
        ("x: {type: uri_file, path: p, mode: eval_mount}", "inputs.x", "is not valid for a"),
        ("x: {type: integer, default: abc}", "inputs.x", "is not a valid integer"),
        ("x: [1, 2]", "inputs.x", "expected a string, a number or true/false, got a list"),
        ("bad-name: 1", "inputs.bad-name", "must be letters, digits and underscores"),
    ],
)
def test_invalid_inputs(tmp_path: Path, inputs: str, key_path: str, message: str) -> None:
    path = write(tmp_path, f"command: echo\nenvironment: azureml:e:1\ninputs:\n  {inputs}\n")
    error = load_error(path)
    assert error.key_path == key_path
    assert error.line == 4
    assert message in str(error)


# ------------------------------------------------------------------ bindings ---------


def test_command_referencing_undeclared_input(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        command: python train.py --lr ${{inputs.lr}}
        environment: azureml:e:1
        inputs:
          epochs: 3
        """,
    )
    error = load_error(path)
    assert error.key_path == "command"
    assert error.line == 1
    assert "${{inputs.lr}} names no input of this job (declared inputs: epochs)" in str(error)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("echo ${{outputs.model}}", "${{outputs.model}} names no output of this job"),
        ("echo ${{search_space.x}}", "only valid in a sweep job's trial command"),
        ("echo ${{parent.inputs.x}}", "cannot be used in a command"),
        ("echo ${{inputs.x.}}", "unknown binding ${{inputs.x.}}"),
        ("echo ${{foo}}", "unknown binding ${{foo}}"),
    ],
)
def test_unresolvable_command_bindings(tmp_path: Path, command: str, message: str) -> None:
    error = load_error(write(tmp_path, f"command: {command}\nenvironment: azureml:e:1\n"))
    assert message in str(error)
    assert error.exit_code == 2


def test_sweep_trial_command_checks_search_space(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        _SWEEP_HEAD.replace("python t.py", '"python t.py ${{search_space.y}}"')
        + "search_space:\n  x: {type: randint, upper: 3}\n",
    )
    error = load_error(path)
    assert error.key_path == "trial.command"
    assert error.line == 2
    assert "${{search_space.y}} names no search_space entry" in str(error)


def test_optional_segment_may_name_an_undeclared_input(tmp_path: Path) -> None:
    path = write(tmp_path, "command: python t.py [--lr ${{inputs.lr}}]\nenvironment: azureml:e:1\n")
    job = load_job(path).job
    assert isinstance(job, CommandJob)
    assert render(job.command, {}) == "python t.py "


def test_legacy_single_brace_form_is_rewritten_with_a_warning(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        command: python t.py --data {inputs.data} --out {outputs.model}
        environment: azureml:e:1
        inputs: {data: {path: ./d}}
        outputs: {model: }
        """,
    )
    loaded = load_job(path)
    assert loaded.job.command == (  # type: ignore[union-attr]
        "python t.py --data ${{inputs.data}} --out ${{outputs.model}}"
    )
    assert len(loaded.warnings) == 1
    assert "deprecated" in loaded.warnings[0]
    assert f"{path}:1: command:" in loaded.warnings[0]


def test_environment_variable_bindings_are_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        command: echo $X
        environment: azureml:e:1
        environment_variables:
          X: ${{inputs.missing}}
          N: 010
        """,
    )
    error = load_error(path)
    assert error.key_path == "environment_variables.X"
    assert error.line == 4


def test_environment_variable_numbers_stay_as_written(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "command: echo\nenvironment: azureml:e:1\n"
        "environment_variables: {N: 010, F: 1.10, B: true}\n",
    )
    job = load_job(path).job
    assert job.environment_variables == {"N": "010", "F": "1.10", "B": "true"}  # type: ignore[union-attr]


def _pipeline_file(tmp_path: Path, jobs: str, extra: str = "") -> Path:
    return write(tmp_path, "type: pipeline\n" + extra + "jobs:\n" + textwrap.indent(jobs, "  "))


def test_pipeline_reference_to_unknown_node(tmp_path: Path) -> None:
    path = _pipeline_file(
        tmp_path,
        """\
        a:
          command: cat ${{inputs.x}}
          environment: azureml:e:1
          inputs:
            x: ${{parent.jobs.missing.outputs.y}}
        """,
    )
    error = load_error(path)
    assert error.key_path == "jobs.a.inputs.x"
    assert error.line == 7
    assert "refers to node 'missing', which is not in this pipeline (nodes: a)" in str(error)


def test_pipeline_reference_to_undeclared_port(tmp_path: Path) -> None:
    path = _pipeline_file(
        tmp_path,
        """\
        a:
          command: echo
          environment: azureml:e:1
          outputs: {out: }
        b:
          command: cat ${{inputs.x}}
          environment: azureml:e:1
          inputs:
            x: {path: "${{parent.jobs.a.outputs.other}}", mode: download}
        """,
    )
    error = load_error(path)
    assert error.key_path == "jobs.b.inputs.x.path"
    assert "node 'a' declares no output 'other' (declared outputs: out)" in str(error)


@pytest.mark.parametrize(
    ("binding", "message"),
    [
        ("x: ${{parent.inputs.nope}}", "${{parent.inputs.nope}} names no input of the pipeline"),
        ("x: ${{inputs.y}}", "cannot be used in a node input"),
    ],
)
def test_pipeline_node_input_bindings(tmp_path: Path, binding: str, message: str) -> None:
    path = _pipeline_file(
        tmp_path,
        f"""\
        a:
          command: cat ${{{{inputs.x}}}}
          environment: azureml:e:1
          inputs:
            {binding}
        """,
        "inputs: {top: 1}\n",
    )
    error = load_error(path)
    assert message in str(error)
    assert error.key_path == "jobs.a.inputs.x"


def test_pipeline_node_output_must_bind_a_pipeline_output(tmp_path: Path) -> None:
    path = _pipeline_file(
        tmp_path,
        """\
        a:
          command: echo > ${{outputs.o}}
          environment: azureml:e:1
          outputs:
            o: ${{parent.outputs.nope}}
        """,
    )
    error = load_error(path)
    assert error.key_path == "jobs.a.outputs.o"
    assert "names no output of the pipeline (it declares no outputs)" in str(error)


def test_pipeline_cycle_is_named(tmp_path: Path) -> None:
    path = _pipeline_file(
        tmp_path,
        """\
        a:
          command: cat ${{inputs.x}} > ${{outputs.o}}
          environment: azureml:e:1
          inputs: {x: "${{parent.jobs.c.outputs.o}}"}
          outputs: {o: }
        b:
          command: cat ${{inputs.x}} > ${{outputs.o}}
          environment: azureml:e:1
          inputs: {x: "${{parent.jobs.a.outputs.o}}"}
          outputs: {o: }
        c:
          command: cat ${{inputs.x}} > ${{outputs.o}}
          environment: azureml:e:1
          inputs: {x: "${{parent.jobs.b.outputs.o}}"}
          outputs: {o: }
        """,
    )
    error = load_error(path)
    assert "pipeline has a cycle: a -> c -> b -> a" in str(error)
    assert error.key_path == "jobs.a"
    assert error.line == 3


def test_pipeline_self_reference_is_a_cycle(tmp_path: Path) -> None:
    path = _pipeline_file(
        tmp_path,
        """\
        a:
          command: cat ${{inputs.x}}
          environment: azureml:e:1
          inputs: {x: "${{parent.jobs.a.outputs.o}}"}
          outputs: {o: }
        """,
    )
    assert "pipeline has a cycle: a -> a" in str(load_error(path))


@pytest.mark.parametrize("name", ["Hello-Job", "HelloJob", "1job", "hello-job"])
def test_invalid_node_names(tmp_path: Path, name: str) -> None:
    path = _pipeline_file(tmp_path, f"{name}:\n  command: echo\n  environment: azureml:e:1\n")
    error = load_error(path)
    assert f"invalid node name {name!r}" in str(error)
    assert error.line == 3


def test_node_name_key_wins_over_name(tmp_path: Path) -> None:
    path = _pipeline_file(
        tmp_path, "a:\n  name: other\n  command: echo\n  environment: azureml:e:1\n"
    )
    loaded = load_job(path)
    assert loaded.job.jobs["a"].name == "a"  # type: ignore[union-attr]
    assert "'name' ignored" in loaded.warnings[0]


def test_pipeline_inline_sweep_node(tmp_path: Path) -> None:
    path = _pipeline_file(
        tmp_path,
        """\
        tune:
          type: sweep
          trial: {command: "python t.py --x ${{search_space.x}}", environment: azureml:e:1}
          search_space: {x: {type: choice, values: [1, 2]}}
          objective: {primary_metric: m, goal: maximize}
          limits: {max_total_trials: 2}
          outputs: {best: }
        report:
          command: cat ${{inputs.b}}
          environment: azureml:e:1
          inputs: {b: "${{parent.jobs.tune.outputs.best}}"}
        """,
    )
    job = load_job(path).job
    assert isinstance(job, PipelineJob)
    assert topological_levels(pipeline_graph(job)) == [["tune"], ["report"]]


# ------------------------------------------------------------------ render -----------


def test_references_parse_every_form() -> None:
    template = (
        "${{inputs.a}} ${{ outputs.b }} ${{search_space.c}} ${{parent.inputs.d}} "
        "${{parent.outputs.e}} ${{parent.jobs.n.outputs.p}} ${{parent.jobs.m.inputs.q}} "
        "${{name}} ${{inputs.group.sub}}"
    )
    found = [(r.scope, r.name, r.node, r.direction) for r in references(template)]
    assert found == [
        ("inputs", "a", None, None),
        ("outputs", "b", None, None),
        ("search_space", "c", None, None),
        ("parent.inputs", "d", None, None),
        ("parent.outputs", "e", None, None),
        ("parent.jobs", "p", "n", "outputs"),
        ("parent.jobs", "q", "m", "inputs"),
        ("name", "", None, None),
        ("inputs", "group.sub", None, None),
    ]
    assert references("${{ outputs.b }}")[0].key == "outputs.b"


def test_render_substitutes_and_handles_optional_segments() -> None:
    template = "python t.py --a ${{inputs.a}} [--b ${{inputs.b}}] $[[--c ${{inputs.c}} -v]]"
    values = {"inputs.a": "1", "inputs.b": "2", "inputs.c": "3"}
    assert render(template, values) == "python t.py --a 1 --b 2 --c 3 -v"
    assert (
        render(template, {"inputs.a": "1"}, optional_missing={"inputs.b", "inputs.c"})
        == "python t.py --a 1  "
    )
    # A bash test bracket is not an optional segment.
    assert render("[ -f ${{inputs.a}} ] && echo", {"inputs.a": "x"}) == "[ -f x ] && echo"


def test_render_errors_name_the_reference() -> None:
    with pytest.raises(BindingError, match=r"no value for \$\{\{inputs.lr\}\}"):
        render("python t.py ${{inputs.lr}}", {}, keys=("command",))
    with pytest.raises(BindingError, match="optional and was not supplied") as info:
        render("python t.py ${{inputs.lr}}", {}, optional_missing={"inputs.lr"})
    assert info.value.hint is not None
    assert info.value.exit_code == 2


def test_upgrade_legacy_leaves_new_syntax_alone() -> None:
    assert upgrade_legacy("echo ${{inputs.a}}") == ("echo ${{inputs.a}}", [])
    assert upgrade_legacy("echo {search_space.b} {x}") == (
        "echo ${{search_space.b}} {x}",
        ["{search_space.b}"],
    )


def test_topological_levels_group_independent_nodes() -> None:
    graph = {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"b", "c"}, "e": set()}
    assert topological_levels(graph) == [["a", "e"], ["b", "c"], ["d"]]
    with pytest.raises(BindingError, match="cycle: x -> y -> x"):
        topological_levels({"x": {"y"}, "y": {"x"}})


def test_literal_text_matches_the_sdk() -> None:
    assert [bindings.literal_text(v) for v in (True, 0.5, 42, "s")] == ["True", "0.5", "42", "s"]


# ------------------------------------------------------------------ overrides --------


def test_apply_overrides_sets_creates_and_parses_yaml_scalars() -> None:
    data = {"inputs": {"lr": 0.1, "flag": False}, "environment": "azureml:e:1"}
    out = apply_overrides(
        data,
        ["inputs.lr=0.01", "inputs.flag=true", "compute=azureml:dsvm", "tags.team=ml", "x="],
    )
    assert out == {
        "inputs": {"lr": 0.01, "flag": True},
        "environment": "azureml:e:1",
        "compute": "azureml:dsvm",
        "tags": {"team": "ml"},
        "x": None,
    }
    assert data == {"inputs": {"lr": 0.1, "flag": False}, "environment": "azureml:e:1"}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("inputs.lr", "expected KEY=VALUE"),
        ("=3", "expected KEY=VALUE"),
        ("inputs..lr=3", "empty segment"),
        ("environment.image=python", "inside environment, which is the string 'azureml:e:1'"),
        ("inputs.lr.value=3", "inside inputs.lr, which is the number 0.1"),
    ],
)
def test_apply_overrides_refuses(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")) as info:
        apply_overrides({"inputs": {"lr": 0.1}, "environment": "azureml:e:1"}, [override])
    assert info.value.exit_code == 2


def test_load_job_applies_overrides_before_validation(tmp_path: Path) -> None:
    path = corpus_copy(tmp_path, "basics/hello-world-input.yml")
    loaded = load_job(
        path,
        overrides=["inputs.hello_number=7", "compute=dsvm", "environment.image=python:3.12"],
    )
    job = loaded.job
    assert isinstance(job, CommandJob)
    assert job.inputs == {"hello_string": "hello world", "hello_number": 7}
    assert job.compute == "dsvm"
    assert job.environment == InlineEnvironment(image="python:3.12")


def test_load_job_invalid_override_names_it(tmp_path: Path) -> None:
    path = corpus_copy(tmp_path, "basics/hello-sweep.yml")
    error = load_error(path, ("limits.max_total_trials=lots",))
    assert error.key_path == "limits.max_total_trials"
    assert error.line is None
    assert "expected an integer, got 'lots' (set by --set limits.max_total_trials=lots)" in str(
        error
    )
    error = load_error(path, ("trial.environment.image=x",))
    assert "which is the string 'azureml:AzureML-sklearn-1.5@latest'" in str(error)
    error = load_error(path, ("trial.comand=x",))
    assert "(did you mean 'command'?)" in str(error)


# ------------------------------------------------------------------ file: refs -------


def test_file_references_are_loaded_relative_to_the_yaml(tmp_path: Path) -> None:
    write(tmp_path, "image: python:3.11\nconda_file: conda.yml\n", "envs/env.yml")
    (tmp_path / "envs" / "conda.yml").write_text("dependencies: [python=3.11]\n")
    write(tmp_path, "type: pytorch\nprocess_count_per_instance: 2\n", "dist.yml")
    write(
        tmp_path,
        "command: echo ${{inputs.x}}\nenvironment: file:../envs/env.yml\ninputs: {x: 1}\n",
        "nodes/a.yml",
    )
    path = write(
        tmp_path,
        """\
        type: pipeline
        jobs:
          a: file:nodes/a.yml
          b:
            command: echo
            environment: file:envs/env.yml
            distribution: file:./dist.yml
        """,
    )
    job = load_job(path).job
    assert isinstance(job, PipelineJob)
    a, b = job.jobs["a"], job.jobs["b"]
    assert isinstance(a, CommandNode) and isinstance(b, CommandNode)
    # conda_file is relative to env.yml, rewritten relative to the job's folder.
    assert a.environment == InlineEnvironment(image="python:3.11", conda_file="envs/conda.yml")
    assert b.environment == a.environment
    assert b.distribution == PyTorchDistribution(type="pytorch", process_count_per_instance=2)


def test_errors_inside_a_file_reference_point_into_it(tmp_path: Path) -> None:
    node = write(tmp_path, "command: echo\n\nenviroment: azureml:e:1\n", "node.yml")
    path = write(tmp_path, "type: pipeline\njobs:\n  a: file:node.yml\n")
    error = load_error(path)
    assert error.path == str(node)
    assert error.line == 3
    assert error.key_path == "enviroment"
    assert "(did you mean 'environment'?)" in str(error)


def test_missing_file_reference(tmp_path: Path) -> None:
    path = write(tmp_path, "command: echo\nenvironment: file:env.yml\n")
    error = load_error(path)
    assert error.line == 2
    assert error.key_path == "environment"
    assert "'file:env.yml' not found" in str(error)


def test_file_reference_loop(tmp_path: Path) -> None:
    write(tmp_path, "type: pipeline\njobs:\n  a: file:job.yml\n", "job.yml")
    assert "refers back to a file that includes it" in str(load_error(tmp_path / "job.yml"))


# ------------------------------------------------------------------ files ------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a mapping of job keys, got an empty file"),
        ("- a\n", "expected a mapping of job keys, got a list"),
        ("command: [\n", "invalid YAML"),
    ],
)
def test_not_a_job_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "job.yml"
    path.write_text(text)
    assert message in str(load_error(path))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert "job file not found" in str(load_error(tmp_path / "nope.yml"))
    assert "found a directory" in str(load_error(tmp_path))
