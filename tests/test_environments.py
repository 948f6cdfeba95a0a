"""Environments: spec resolution and hashing (client) and the agent's env cache.

The builds use the real uv and real virtual environments. No network: packages come
from a wheel written by hand into a local folder, passed with `--no-index --find-links`.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import io
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import uv as uv_package
import yaml

from targets.agent.envs import (
    MARKER,
    EnvError,
    conda_to_pip,
    ensure_environment,
    environment_yaml,
    list_environments,
    prune_environments,
)
from targets.environments import EnvironmentSpec, resolve_environment
from targets.errors import ConfigError
from targets.runconfig.model import RunConfiguration

UV = uv_package.find_uv_bin()
CURRENT = f"{sys.version_info[0]}.{sys.version_info[1]}"


@pytest.fixture(autouse=True)
def _isolated_uv(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path_factory.mktemp("uv-cache")))
    monkeypatch.setenv("UV_LINK_MODE", "copy")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")


def make_wheel(folder: Path, name: str = "tinypkg", version: str = "1.0") -> Path:
    """Write a minimal pure-Python wheel by hand (a zip with the package, METADATA,
    WHEEL and RECORD)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: targets-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    record = []
    for path, text in files.items():
        digest = hashlib.sha256(text.encode()).digest()
        b64 = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        record.append(f"{path},sha256={b64},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    folder = tmp_path / "wheels"
    make_wheel(folder, "tinypkg", "1.0")
    make_wheel(folder, "otherpkg", "2.1.3")
    return folder


def spec_json(wheels: Path, *pip: str, conda: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    spec = EnvironmentSpec(
        managed=True,
        interpreter=None,
        python_version=extra.pop("python_version", None),
        channels=(),
        conda_packages=conda,
        pip_packages=pip,
        pip_options=("--no-index", f"--find-links {wheels}"),
        variables=(),
    )
    return {**spec.to_json(), "hash": spec.hash}


def resolve_file(tmp_path: Path, text: str, name: str = "conda.yml") -> EnvironmentSpec:
    (tmp_path / name).write_text(text)
    config = RunConfiguration.model_validate(
        {"environment": {"python": {"conda_dependencies_file": name}}}
    )
    return resolve_environment(config, tmp_path)


def run_python(python: str, code: str) -> str:
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


# -- resolution and hashing ---------------------------------------------------------------


def test_user_managed_uses_interpreter_path(tmp_path: Path) -> None:
    config = RunConfiguration.model_validate(
        {
            "environment": {
                "python": {"user_managed_dependencies": True, "interpreter_path": "/opt/py"}
            }
        }
    )
    spec = resolve_environment(config, tmp_path)
    assert not spec.managed
    assert spec.interpreter == "/opt/py"


def test_no_conda_dependencies_means_default_interpreter(tmp_path: Path) -> None:
    spec = resolve_environment(RunConfiguration(), tmp_path)
    assert not spec.managed
    assert spec.interpreter is None
    assert spec.describe() == "user-managed: default python"


def test_conda_file_is_parsed(tmp_path: Path) -> None:
    spec = resolve_file(
        tmp_path,
        """
name: project_environment
channels: [conda-forge]
dependencies:
  - python=3.11.4
  - numpy=1.26
  - pip
  - pip:
    - -i https://example.org/simple
    - --extra-index-url=https://extra.example.org/simple
    - requests>=2
variables:
  MY_VAR: 1
""",
    )
    assert spec.managed
    assert spec.python_version == "3.11"
    assert spec.channels == ("conda-forge",)
    assert spec.conda_packages == ("python=3.11.4", "numpy=1.26")
    assert spec.pip_packages == ("requests>=2",)
    assert spec.pip_options == (
        "--index-url https://example.org/simple",
        "--extra-index-url https://extra.example.org/simple",
    )
    assert spec.variables == (("MY_VAR", "1"),)
    assert EnvironmentSpec.from_json({**spec.to_json(), "hash": spec.hash}) == spec


def test_inline_conda_dependencies_and_requirements_file(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("# pinned\nflask==3.0  # web\n--pre\n")
    config = RunConfiguration.model_validate(
        {
            "environment": {
                "python": {
                    "conda_dependencies": {
                        "dependencies": ["python=3.10", {"pip": ["-r requirements.txt"]}]
                    }
                }
            }
        }
    )
    spec = resolve_environment(config, tmp_path)
    assert spec.managed
    assert spec.python_version == "3.10"
    assert spec.pip_packages == ("flask==3.0",)
    assert spec.pip_options == ("--pre",)


def test_hash_ignores_order_spacing_and_case(tmp_path: Path) -> None:
    one = resolve_file(
        tmp_path,
        "dependencies: [python=3.11, numpy=1.26, scipy, {pip: [Requests>=2, torch_audio]}]\n",
        "a.yml",
    )
    two = resolve_file(
        tmp_path,
        """
name: other-name
dependencies:
  - scipy
  - NumPy =1.26
  - python=3.11
  - pip:
      - torch-audio
      - requests >= 2
""",
        "b.yml",
    )
    assert one.hash == two.hash
    assert len(one.hash) >= 16
    int(one.hash, 16)
    three = resolve_file(tmp_path, "dependencies: [python=3.11, numpy=1.27, scipy]\n", "c.yml")
    assert three.hash != one.hash
    four = resolve_file(tmp_path, "dependencies: [python=3.12, numpy=1.26, scipy]\n", "d.yml")
    assert four.hash != three.hash


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("dependencies: [numpy==]\n", "'numpy==' is not a valid conda package spec"),
        ("dependencies:\n  - {foo: bar}\n", "dependencies[0]"),
        ("dependencies:\n  - [a, b]\n", "expected a string or a mapping {pip: [...]}"),
        ("dependencies: [numpy\n", "invalid YAML"),
        ("dependencies: [{pip: [requests==]}]\n", "'requests==' is not a valid pip requirement"),
        ("dependencies: [{pip: [-e .]}]\n", "pip option '-e .' is not supported"),
        ("- just a list\n", "expected a conda environment mapping"),
    ],
)
def test_bad_conda_file_is_a_config_error(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_file(tmp_path, text)
    assert caught.value.exit_code == 2
    assert "conda.yml" in str(caught.value)
    assert fragment in str(caught.value)


def test_missing_conda_file_is_a_config_error(tmp_path: Path) -> None:
    config = RunConfiguration.model_validate(
        {"environment": {"python": {"conda_dependencies_file": "nope.yml"}}}
    )
    with pytest.raises(
        ConfigError,
        match=r"nope\.yml: environment\.python\.conda_dependencies_file: the conda "
        r"dependencies file does not exist\n  hint: the path is relative",
    ):
        resolve_environment(config, tmp_path)


@pytest.mark.parametrize(
    ("conda", "pypi"),
    [
        ("numpy", "numpy"),
        ("numpy=1.26", "numpy==1.26.*"),
        ("numpy=1.26.4", "numpy==1.26.4"),
        ("numpy==1.26", "numpy==1.26"),
        ("numpy>=1.2", "numpy>=1.2"),
        ("numpy>=1.2,<2", "numpy>=1.2,<2"),
        ("numpy 1.26", "numpy==1.26.*"),
        ("numpy 1.26.4 py311h64a7726_0", "numpy==1.26.4"),
        ("numpy >= 1.2", "numpy>=1.2"),
        ("numpy=1.26.*", "numpy==1.26.*"),
        ("conda-forge::numpy", "numpy"),
        ("conda-forge::numpy=1.26", "numpy==1.26.*"),
        ("numpy=1.26.4=py311h64a7726_0", "numpy==1.26.4"),
        ("numpy[version='>=1.2']", "numpy>=1.2"),
        ("python=3.11", None),
        ("pip", None),
        ("pip=23.3", None),
    ],
)
def test_conda_spec_translation(conda: str, pypi: str | None) -> None:
    assert conda_to_pip(conda) == pypi


def test_conda_alternatives_cannot_be_translated() -> None:
    with pytest.raises(ValueError, match="cannot express"):
        conda_to_pip("numpy 1.25|1.26")


def test_environment_yaml_is_valid_yaml() -> None:
    spec = EnvironmentSpec(
        managed=True,
        interpreter=None,
        python_version="3.11",
        channels=("conda-forge",),
        conda_packages=("python=3.11.4", "numpy=1.26"),
        pip_packages=("requests>=2",),
        pip_options=("--index-url https://example.org/simple",),
        variables=(("A", "x: y"),),
    )
    parsed = yaml.safe_load(environment_yaml({**spec.to_json(), "hash": spec.hash}))
    assert parsed == {
        "name": f"targets-{spec.hash}",
        "channels": ["conda-forge"],
        "dependencies": [
            "python=3.11.4",
            "numpy=1.26",
            "pip",
            {"pip": ["--index-url https://example.org/simple", "requests>=2"]},
        ],
        "variables": {"A": "x: y"},
    }


# -- building with uv ---------------------------------------------------------------------


def test_build_then_reuse(tmp_path: Path, wheels: Path) -> None:
    spec = spec_json(wheels, "tinypkg", "OtherPkg>=2", python_version=CURRENT)
    log = io.BytesIO()
    first = ensure_environment(spec, str(tmp_path / "root"), log, uv=UV)
    assert first["builder"] == "uv"
    assert not first["reused"]
    assert first["env_dir"] == str(tmp_path / "root" / "envs" / spec["hash"])
    assert run_python(first["python"], "import tinypkg, otherpkg; print(otherpkg.VERSION)") == (
        "2.1.3"
    )
    text = log.getvalue().decode()
    assert text.startswith(f"# preparing environment {spec['hash']} with uv\n")
    assert "tinypkg" in text  # uv's own output streamed into the log
    assert (Path(first["env_dir"]) / MARKER).is_file()

    started = time.monotonic()
    second = ensure_environment(spec, str(tmp_path / "root"), io.BytesIO(), uv=UV)
    assert time.monotonic() - started < 2
    assert second == {**first, "reused": True}


def test_conda_specs_are_tried_on_pypi(tmp_path: Path, wheels: Path) -> None:
    spec = spec_json(wheels, conda=("python=" + CURRENT, "conda-forge::otherpkg=2.1"))
    result = ensure_environment(spec, str(tmp_path), io.BytesIO(), uv=UV)
    assert run_python(result["python"], "import otherpkg; print(otherpkg.VERSION)") == "2.1.3"


def test_concurrent_preparations_build_once(tmp_path: Path, wheels: Path) -> None:
    spec = spec_json(wheels, "tinypkg")
    logs = [io.BytesIO(), io.BytesIO(), io.BytesIO()]
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def prepare(log: io.BytesIO) -> None:
        try:
            results.append(ensure_environment(spec, str(tmp_path), log, uv=UV))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=prepare, args=(log,)) for log in logs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(r["reused"] for r in results) == [False, True, True]
    texts = [log.getvalue().decode() for log in logs]
    assert sum("# preparing environment" in t for t in texts) == 1
    assert sum("waiting for another run that is preparing this environment" in t for t in texts)


def test_concurrent_processes_build_once(tmp_path: Path, wheels: Path) -> None:
    import json

    spec = spec_json(wheels, "tinypkg")
    code = (
        "import io, json, sys; from targets.agent.envs import ensure_environment; "
        "r = ensure_environment(json.loads(sys.argv[1]), sys.argv[2], io.BytesIO(), "
        "uv=sys.argv[3]); print(r['reused'])"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, json.dumps(spec), str(tmp_path), UV],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = sorted(p.communicate()[0].strip() for p in procs)
    assert outputs == ["False", "True"]


def test_failed_build_names_the_package_and_leaves_nothing(tmp_path: Path, wheels: Path) -> None:
    spec = spec_json(wheels, "tinypkg", "no-such-package-xyz")
    with pytest.raises(EnvError) as caught:
        ensure_environment(spec, str(tmp_path), io.BytesIO(), uv=UV)
    message = str(caught.value)
    assert "could not find package no-such-package-xyz" in message
    assert not (tmp_path / "envs" / spec["hash"]).exists()
    assert list_environments(str(tmp_path)) == []


def test_failed_conda_spec_suggests_micromamba(tmp_path: Path, wheels: Path) -> None:
    spec = spec_json(wheels, conda=("cudatoolkit=11.8",))
    with pytest.raises(EnvError) as caught:
        ensure_environment(spec, str(tmp_path), io.BytesIO(), uv=UV)
    message = str(caught.value)
    assert "cudatoolkit (conda spec 'cudatoolkit=11.8')" in message
    assert "no conda, mamba or micromamba is installed" in message
    assert "install micromamba" in message
    assert "move the package to the pip list" in message


def test_half_built_folder_is_rebuilt(tmp_path: Path, wheels: Path) -> None:
    spec = spec_json(wheels, "tinypkg")
    leftover = tmp_path / "envs" / spec["hash"]
    (leftover / "bin").mkdir(parents=True)
    (leftover / "junk").write_text("from a build that was killed")
    log = io.BytesIO()
    result = ensure_environment(spec, str(tmp_path), log, uv=UV)
    assert not result["reused"]
    assert not (leftover / "junk").exists()
    assert "removing half-built environment" in log.getvalue().decode()
    run_python(result["python"], "import tinypkg")


def test_python_version_not_installed(tmp_path: Path, wheels: Path) -> None:
    spec = spec_json(wheels, "tinypkg", python_version="3.4")
    with pytest.raises(EnvError) as caught:
        ensure_environment(spec, str(tmp_path), io.BytesIO(), uv=UV)
    message = str(caught.value)
    assert message.startswith("Python 3.4 is not installed on the target (found there: ")
    assert "TARGETS_PYTHON_VERSION=nearest" in message
    assert not (tmp_path / "envs" / spec["hash"]).exists()


def test_venv_fallback_without_uv(
    tmp_path: Path, wheels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no uv, conda or micromamba on PATH
    spec = spec_json(wheels, "tinypkg", python_version=CURRENT)
    result = ensure_environment(
        spec, str(tmp_path / "root"), io.BytesIO(), default_python=sys.executable
    )
    assert result["builder"] == "venv"
    run_python(result["python"], "import tinypkg")


# -- user-managed interpreters ------------------------------------------------------------


def test_user_managed_interpreter_resolution(tmp_path: Path) -> None:
    given = {"managed": False, "interpreter": sys.executable}
    result = ensure_environment(given, str(tmp_path), io.BytesIO())
    assert result == {
        "python": sys.executable,
        "env_dir": None,
        "reused": False,
        "builder": "none",
    }
    by_name = ensure_environment(
        {"managed": False, "interpreter": "python3"}, str(tmp_path), io.BytesIO()
    )
    assert os.path.isabs(by_name["python"])
    default = ensure_environment(
        {"managed": False, "interpreter": None},
        str(tmp_path),
        io.BytesIO(),
        default_python=sys.executable,
    )
    assert default["python"] == sys.executable
    assert not (tmp_path / "envs").exists()


def test_missing_interpreter_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EnvError, match=r"'/nonexistent/bin/python' was not found on the target"):
        ensure_environment(
            {"managed": False, "interpreter": "/nonexistent/bin/python"},
            str(tmp_path),
            io.BytesIO(),
        )
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(EnvError, match="does not run"):
        ensure_environment(
            {"managed": False, "interpreter": str(broken)}, str(tmp_path), io.BytesIO()
        )


# -- listing and pruning ------------------------------------------------------------------


def test_list_and_prune(tmp_path: Path, wheels: Path) -> None:
    root = str(tmp_path / "root")
    one = spec_json(wheels, "tinypkg")
    two = spec_json(wheels, "otherpkg")
    ensure_environment(one, root, io.BytesIO(), uv=UV)
    ensure_environment(two, root, io.BytesIO(), uv=UV)

    listed = {e["hash"]: e for e in list_environments(root)}
    assert set(listed) == {one["hash"], two["hash"]}
    entry = listed[one["hash"]]
    assert entry["ready"] and not entry["building"]
    assert entry["builder"] == "uv"
    assert entry["describe"] == "python (any); pip: tinypkg"
    assert entry["size_bytes"] > 0
    assert entry["created"] <= entry["last_used"] <= time.time()

    assert prune_environments(root, older_than_seconds=3600) == []
    # An environment whose lock is held (being prepared) is never removed.
    lock_path = Path(root) / "envs" / f"{two['hash']}.lock"
    with open(lock_path, "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        building = {e["hash"]: e["building"] for e in list_environments(root)}
        assert building == {one["hash"]: False, two["hash"]: True}
        assert prune_environments(root) == [one["hash"]]
    assert [e["hash"] for e in list_environments(root)] == [two["hash"]]
    assert prune_environments(root, keep_hashes=[two["hash"]]) == []
    assert prune_environments(root) == [two["hash"]]
    assert list_environments(root) == []


def test_prune_by_age_uses_last_use(tmp_path: Path, wheels: Path) -> None:
    root = str(tmp_path)
    spec = spec_json(wheels, "tinypkg")
    result = ensure_environment(spec, root, io.BytesIO(), uv=UV)
    old = time.time() - 7200
    os.utime(Path(result["env_dir"]) / ".targets-last-used", (old, old))
    assert prune_environments(root, older_than_seconds=3600) == [spec["hash"]]


CORPUS = Path(__file__).parent / "data" / "azureml-corpus"


@pytest.mark.parametrize(
    "conda_file",
    sorted(CORPUS.rglob("conda_dependencies.yml")),
    ids=lambda p: str(p.relative_to(CORPUS)),
)
def test_corpus_conda_files_resolve(conda_file: Path) -> None:
    # TARGETS_AZUREML_REAL keeps azureml-defaults, which is some files' only pip package
    # (otherwise the run library takes its place: tests/test_run_context.py).
    config = RunConfiguration.model_validate(
        {
            "environment_variables": {"TARGETS_AZUREML_REAL": "1"},
            "environment": {"python": {"conda_dependencies_file": conda_file.name}},
        }
    )
    spec = resolve_environment(config, conda_file.parent)
    assert spec.managed
    assert spec.python_version is not None
    assert spec.pip_packages
    assert spec.hash == EnvironmentSpec.from_json(spec.to_json()).hash
