"""``targets run``: submit one run and stream it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from targets.agent import protocol
from targets.cli._common import (
    STATUS_STYLE,
    Progress,
    emit_json,
    fmt_duration,
    output_option,
    say,
    warn,
    workspace_of,
)
from targets.errors import UsageError

RUNCONFIG_SUFFIXES = {".yml", ".yaml", ".runconfig", ".json"}
CONFIG_DIRS = {".azureml", "aml_config"}


def _is_runconfig(path: Path) -> bool:
    return path.suffix.lower() in RUNCONFIG_SUFFIXES or path.parent.name in CONFIG_DIRS


_JOB_KEYS = {
    "compute",
    "code",
    "inputs",
    "outputs",
    "trial",
    "jobs",
    "search_space",
    "distribution",
    "resources",
    "limits",
    "display_name",
    "settings",
    "objective",
}


def _is_job(path: Path) -> bool:
    """An Azure ML v2 job YAML (not one of our runconfigs)?"""
    try:
        if path.suffix.lower() not in (".yml", ".yaml") or not path.is_file():
            return False
    except OSError:
        return False  # a name no system call takes: the runconfig reader says so (exit 2)
    from targets.errors import ConfigError
    from targets.runconfig.io import load_yaml_file

    try:
        data = load_yaml_file(path)
    except ConfigError:
        return False  # the runconfig reader reports it (not UTF-8, bounds, line of a syntax error)
    if not isinstance(data, dict):
        return False
    if "azureml" in str(data.get("$schema", "")) or data.get("type") in (
        "command",
        "sweep",
        "pipeline",
        "automl",
        "spark",
        "import",
        "Command",
    ):
        return True
    if _JOB_KEYS & set(data):
        return True
    env = data.get("environment")
    # Our runconfigs describe environments with python/docker sections; jobs name an
    # image or a conda file, or refer to a registered environment by a string.
    return isinstance(env, str) or (
        isinstance(env, dict) and bool({"image", "conda_file", "build"} & set(env))
    )


def run_job(
    ctx: click.Context,
    file: str,
    overrides: tuple[str, ...],
    target: str | None,
    name: str | None,
    detach: bool,
    output: str,
    python: str | None = None,
) -> None:
    """Run an Azure ML v2 job file: a command, sweep or pipeline job."""
    from targets.jobs.reader import load_job
    from targets.jobs.submit import submit_job

    ws = workspace_of(ctx)
    loaded = load_job(file, overrides=overrides, workspace=ws)
    run_ = submit_job(
        ws, loaded, compute=target, name=name, warn=warn, overrides=overrides, python=python
    )
    _follow(run_, detach=detach, output=output, target_name=run_.record.target)


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("file", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--target", "-t", help="The compute target (default: the runconfig's, or local).")
@click.option("--experiment", "-e", help="Experiment name (default: the project folder's name).")
@click.option("--name", "display_name", help="A display name for the run.")
@click.option("--command", "-c", "command", help="Run a shell command instead of a script.")
@click.option(
    "--runconfig",
    "-r",
    "runconfig_file",
    type=click.Path(dir_okay=False),
    help="Take the environment and settings from this runconfig; FILE is the script.",
)
@click.option(
    "--source-dir",
    type=click.Path(file_okay=False),
    help="The folder to snapshot (default: the current directory for a script).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a key of a v2 job file (repeatable), e.g. inputs.lr=0.01.",
)
@click.option("--stream", is_flag=True, help="Stream the output (the default; for az ml habits).")
@click.option("--detach", "-d", is_flag=True, help="Return once the run started; don't stream.")
@click.option(
    "--python",
    "python",
    metavar="PATH",
    help="The Python of a user-managed run (default on the local target: the active "
    "virtualenv or conda env, else python on PATH). Sets interpreter_path.",
)
@click.option(
    "--no-docker",
    is_flag=True,
    help="Set the runconfig's Docker section aside: build the same conda environment with "
    "conda or uv on the target instead (sets TARGETS_NO_DOCKER=1 for the run).",
)
@click.option(
    "--python-version",
    "python_version",
    metavar="X.Y|nearest",
    help="Build the environment with this Python instead of the conda file's, or with the "
    "nearest version the target has (sets TARGETS_PYTHON_VERSION for the run).",
)
@output_option
@click.pass_context
def run(
    ctx: click.Context,
    file: str | None,
    args: tuple[str, ...],
    target: str | None,
    experiment: str | None,
    display_name: str | None,
    command: str | None,
    runconfig_file: str | None,
    source_dir: str | None,
    overrides: tuple[str, ...],
    stream: bool,
    detach: bool,
    output: str,
    python: str | None,
    no_docker: bool,
    python_version: str | None,
) -> None:
    """Run FILE on a compute target and stream its output.

    FILE is a Python script (arguments for it follow `--`), a runconfig YAML, or an
    Azure ML v1 run configuration (.azureml/NAME, *.runconfig). Exit code: 0 when the
    run completed, 1 when it failed or was canceled, 2 for bad input.

    \b
      targets run train.py --target local -- --alpha 0.5
      targets run runconfigs/train.yml
      targets run .azureml/local.runconfig
      targets run -c "python -m pip list"
      targets run train.py -r aml_config/local.runconfig   # a Workbench "$file" runconfig
      targets run train.py --python ~/.virtualenvs/proj/bin/python
      targets run .azureml/docker.runconfig --no-docker --python-version nearest
    """
    from targets.runconfig.io import checked_path
    from targets.runconfig.model import RunConfiguration

    # A name no system call can take fails with ENAMETOOLONG deep inside; refuse it first.
    for value, what in (
        (file, "FILE"),
        (runconfig_file, "--runconfig"),
        (source_dir, "--source-dir"),
    ):
        if value is not None:
            checked_path(value, what)
    if python is not None:
        python = _python_option(python)
    run_variables = _preflight_variables(no_docker, python_version)
    if file is not None and command is None and _is_job(Path(file)):
        if args or runconfig_file or source_dir:
            raise UsageError(
                "a v2 job file takes --set, --target, --name, --python, --no-docker and "
                "--python-version only"
            )
        overrides = (
            *overrides,
            *(f"environment_variables.{k}={v}" for k, v in run_variables.items()),
        )
        run_job(ctx, file, overrides, target, display_name, detach, output, python)
        return
    if overrides:
        raise UsageError(
            "--set applies to Azure ML v2 job files",
            hint="edit the runconfig, or give its values as options",
        )
    ws = workspace_of(ctx)
    cwd = Path.cwd()
    origin: dict[str, Any] = {"argv": sys.argv[1:]}
    if runconfig_file and (command is not None or (file and _is_runconfig(Path(file)))):
        raise UsageError("--runconfig goes with a script: targets run SCRIPT.py -r RUNCONFIG")
    if command is not None:
        if file is not None:
            raise UsageError("give either FILE or --command, not both")
        config = RunConfiguration(command=command)
        source = Path(source_dir or cwd)
    elif file is None:
        raise UsageError("nothing to run", hint="targets run SCRIPT.py | RUNCONFIG.yml | -c CMD")
    elif _is_runconfig(Path(file)):
        from targets.runconfig.io import load_runconfig

        loaded = load_runconfig(file, project_dir=cwd)
        for line in loaded.warnings:
            warn(line)
        config = loaded.config
        source = Path(source_dir) if source_dir else loaded.source_directory
        if args:
            if config.command:
                raise UsageError("extra arguments after -- only go with a script runconfig")
            config.arguments = [*config.arguments, *args]
        origin["runconfig"] = str(loaded.path)
        origin["format"] = loaded.format
    else:
        script = Path(file)
        source = Path(source_dir) if source_dir else cwd
        base = RunConfiguration()
        if runconfig_file:
            from targets.runconfig.io import load_runconfig

            loaded = load_runconfig(runconfig_file, project_dir=cwd)
            for line in loaded.warnings:
                warn(line)
            base = loaded.config
            source = Path(source_dir) if source_dir else loaded.source_directory
            origin["runconfig"] = str(loaded.path)
            origin["format"] = loaded.format
        full = (cwd / script).resolve()
        if not full.is_file():
            raise UsageError(f"no such script: {file}")
        try:
            rel = full.relative_to(source.resolve())
        except ValueError:
            raise UsageError(
                f"the script {file!r} is not inside the source directory {source.resolve()}",
                hint="run from the project folder, or pass --source-dir",
            ) from None
        config = base.model_copy(update={"command": None})
        config.script = rel.as_posix()
        config.arguments = list(args) if args or not runconfig_file else config.arguments
    if target:
        config.target = target
    if run_variables:
        config.environment_variables = {**config.environment_variables, **run_variables}
    if python is not None:
        from targets.environments import use_interpreter

        use_interpreter(config, python)

    from targets.runs import submit_run

    progress = Progress(enabled=output == "table")
    try:
        run_ = submit_run(
            ws,
            config,
            source_dir=source,
            experiment=experiment,
            display_name=display_name,
            progress=progress,
            origin=origin,
            warn=warn,
        )
    finally:
        progress.close()
    _follow(run_, detach=detach, output=output, target_name=config.target)


def _preflight_variables(no_docker: bool, python_version: str | None) -> dict[str, str]:
    """The run variables ``--no-docker`` and ``--python-version`` stand for (see
    :mod:`targets.preflight`); a malformed version is refused here."""
    from targets.preflight import NEAREST, NO_DOCKER, PYTHON_VERSION, valid_python_setting

    found: dict[str, str] = {}
    if no_docker:
        found[NO_DOCKER] = "1"
    if python_version is not None:
        value = python_version.strip()
        if not valid_python_setting(value):
            raise UsageError(
                f"--python-version {python_version!r} is not a Python version",
                hint=f"give major.minor (e.g. 3.8) or {NEAREST}",
            )
        found[PYTHON_VERSION] = value.lower() if value.lower() == NEAREST else value
    return found


def _python_option(value: str) -> str:
    """``--python``: a path (``~`` expanded, made absolute against the current folder)
    or a command name as given. Whether it exists and runs is checked by the target (on
    the local target before anything is written; elsewhere on the target)."""
    if not value.strip():
        raise UsageError("--python needs the path of a Python interpreter")
    if os.sep in value or value.startswith("~"):
        return os.path.abspath(os.path.expanduser(value))
    return value


def _follow(run_: Any, *, detach: bool, output: str, target_name: str) -> None:
    if detach:
        if output == "json":
            emit_json(run_.get_details())
        else:
            click.echo(run_.id)
            say(f"follow it with: targets runs logs {run_.id} --follow", dim=True)
        return
    say(f"run {run_.id} on {target_name}", dim=True)
    sink = sys.stderr.buffer if output == "json" else sys.stdout.buffer
    try:
        record = run_.stream(sink, from_start=False)
    except KeyboardInterrupt:
        say(
            f"\nstopped streaming; the run goes on. Resume with: "
            f"targets runs logs {run_.id} --follow",
            fg="yellow",
        )
        sys.exit(130)
    finally:
        run_.close()
    if output == "json":
        emit_json(run_.get_details())
    folder = os.path.relpath(run_.folder)
    extra = f" with exit code {record.exit_code}" if record.exit_code not in (None, 0) else ""
    if record.started_at is None:  # it never started: say what stopped it, not a duration
        logs = [
            os.path.join(folder, name)
            for name in ("prepare.log", "driver.log")
            if os.path.isfile(os.path.join(folder, name))
        ]
        say(
            f"{record.status} before it started{extra}: "
            f"{record.message or 'no reason was recorded'}\n"
            f"logs: {', '.join(logs) or folder}",
            fg=STATUS_STYLE.get(record.status),
        )
        sys.exit(0 if record.status == protocol.COMPLETED else 1)
    failed = record.status != protocol.COMPLETED
    message = f" ({record.message})" if failed and record.message else ""
    say(
        f"{record.status}{extra}{message} in {fmt_duration(record.duration)} - "
        f"outputs and logs in {folder}",
        fg=STATUS_STYLE.get(record.status),
    )
    sys.exit(0 if record.status == protocol.COMPLETED else 1)
