"""The ``hdinsight`` target: the head node of a Spark cluster over SSH (HDInsight, HDP,
or any machine with ``spark-submit``).

It is a :class:`~targets.compute.vm.VMTarget` (same attach options, secrets and host-key
rules) that also knows where Spark is: the attach probes the head node for
``spark-submit`` and its version and refuses a node without one. A ``framework: pyspark``
run goes through that ``spark-submit`` with the target's master (``yarn`` unless
``--spark-master`` says otherwise); the agent's supervisor builds the command line
(``targets/agent/spark.py``). Runs with ``framework: python`` run as on a VM.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from typing import Any

from pydantic import Field, field_validator

from targets.compute.base import Capability, Progress, RunHandle, SubmitRequest, no_progress
from targets.compute.vm import VMOptions, VMTarget
from targets.errors import TargetsError, UsageError

__all__ = ["HDInsightOptions", "HDInsightTarget"]

# Where HDInsight/HDP head nodes keep Spark when it is not on a non-login shell's PATH.
_USUAL_PLACES = (
    "/usr/hdp/current/spark3-client/bin/spark-submit",
    "/usr/hdp/current/spark2-client/bin/spark-submit",
    "/usr/bin/spark-submit",
    "/opt/spark/bin/spark-submit",
)
_VERSION = re.compile(r"version\s+(\d+\.\d+[\w.\-]*)")


class HDInsightOptions(VMOptions):
    """``targets attach NAME --type hdinsight --address ...`` options."""

    spark_master: str = Field(
        default="yarn", description="Spark master for runs (e.g. yarn, local[4], spark://h:7077)."
    )
    spark_submit: str | None = Field(
        default=None, description="Path of spark-submit on the head node (default: found there)."
    )

    @field_validator("spark_master")
    @classmethod
    def _master(cls, value: str) -> str:
        value = value.strip()
        if not value or any(c.isspace() for c in value):
            raise ValueError("give a Spark master URL such as yarn or local[2]")
        return value


class HDInsightTarget(VMTarget):
    """A Spark head node over SSH."""

    kind = "hdinsight"
    # Not the VM aliases (remote, dsvm): those name the vm kind.
    aliases = ()
    description = "the head node of a Spark cluster over SSH (like Azure HDInsight)"
    options_model = HDInsightOptions
    capabilities = frozenset(
        {
            Capability.VIRTUALENV,
            Capability.CONDA,
            Capability.SPARK,
            Capability.CANCEL,
            Capability.LIVE_LOGS,
        }
    )

    @property
    def hdi_options(self) -> HDInsightOptions:
        assert isinstance(self.options, HDInsightOptions)
        return self.options

    def _find_spark_submit(self) -> str | None:
        """The spark-submit path on the head node, or None. One SSH command."""
        given = self.hdi_options.spark_submit
        if given:
            script = f"test -x {shlex.quote(given)} && echo {shlex.quote(given)}"
        else:
            places = " ".join(shlex.quote(p) for p in _USUAL_PLACES)
            script = (
                "command -v spark-submit || "
                f'for p in {places}; do test -x "$p" && echo "$p" && break; done'
            )
        code, out, _err = self.connection().run(script)
        path = out.decode(errors="replace").strip().splitlines()
        return path[0] if code == 0 and path else None

    def probe(self) -> dict[str, Any]:
        """The VM facts plus ``spark_submit``, ``spark_version`` and ``spark_master``.
        Raises TargetsError when the head node has no spark-submit."""
        facts = super().probe()
        path = self._find_spark_submit()
        where = self.hdi_options.address
        if path is None:
            given = self.hdi_options.spark_submit
            raise TargetsError(
                f"no spark-submit on {where}"
                + (f" at {given}" if given else " (on PATH or in the usual places)"),
                hint="install Spark there, or attach with --spark-submit PATH",
            )
        # `spark-submit --version` prints its banner on stderr and starts a JVM.
        code, out, err = self.connection().run(f"{shlex.quote(path)} --version")
        text = (out + err).decode(errors="replace")
        found = _VERSION.search(text)
        if code != 0 or found is None:
            raise TargetsError(
                f"{path} --version failed on {where} (exit code {code}): {text.strip()[-500:]}",
                hint="check that Java and Spark work there for this user",
            )
        facts.update(
            spark_submit=path,
            spark_version=found.group(1),
            spark_master=self.hdi_options.spark_master,
        )
        return facts

    def submit(self, request: SubmitRequest, progress: Progress = no_progress) -> RunHandle:
        """As for a VM; a pyspark run also gets the target's master and spark-submit, and
        is refused before anything is uploaded when spark-submit has gone."""
        if request.config.framework == "pyspark":
            path = self._find_spark_submit()
            if path is None:
                raise UsageError(
                    f"target {self.name!r} has no spark-submit any more",
                    hint="install Spark on the head node, or attach again with --spark-submit",
                )
            variables = {
                "TARGETS_SPARK_MASTER": self.hdi_options.spark_master,
                "TARGETS_SPARK_SUBMIT": path,
                **request.config.environment_variables,
            }
            config = request.config.model_copy(update={"environment_variables": variables})
            request = dataclasses.replace(request, config=config)
        return super().submit(request, progress)
