"""What the user asked ``occam submit`` to run: a script or a module, and its arguments. Pure checks."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from occam.errors import ConfigError
from occam.spec import ClusterSpec

_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

#: The file a ``-m module`` job runs: spark-submit only runs files.
LAUNCHER_NAME = "occam_launcher.py"


@dataclass(frozen=True)
class Job:
    """A script path or a module name (exactly one), and the arguments the script gets."""

    script: str | None = None
    module: str | None = None
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.script is None) == (self.module is None):
            raise ConfigError(
                "name what to run: a script (occam submit train.py) or a module (occam submit -m package.train), "
                "not both"
            )
        if self.module is not None and not _MODULE_RE.match(self.module):
            raise ConfigError(f"-m {self.module!r} is not a module name; write it like 'occam.examples.train_digits'")
        if self.script is not None and not self.script.endswith(".py"):
            raise ConfigError(
                f"{self.script!r}: spark-submit runs Python files ending in .py; rename it, or run a module with -m"
            )

    @property
    def file_name(self) -> str:
        """The name the job's file has where it runs (the script's own name, or the launcher's)."""
        return os.path.basename(self.script) if self.script is not None else LAUNCHER_NAME

    def source(self) -> str:
        """The text of the file the job runs: the script as it is, or a launcher that runs the module."""
        if self.script is None:
            return launcher_source(str(self.module))
        try:
            with open(self.script, encoding="utf-8") as fh:
                return fh.read()
        except FileNotFoundError:
            raise ConfigError(f"no script {self.script!r} (looked from {os.getcwd()}); check the path") from None
        except (IsADirectoryError, UnicodeDecodeError, PermissionError) as exc:
            raise ConfigError(f"cannot read the script {self.script!r}: {exc}") from None


def launcher_source(module: str) -> str:
    """A script that runs ``module`` as ``python -m module`` would, with the job's arguments."""
    return (
        f'"""Runs {module} as its __main__ (written by occam submit -m)."""\n'
        "import runpy\n"
        "import sys\n\n"
        f"sys.argv[0] = {module!r}\n"
        f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
    )


@dataclass(frozen=True)
class Submission:
    """A batch job as ``occam submit`` hands it to its backend.

    ``detach``: return once submitted (Kubernetes only). ``keep``: leave the driver pod after the job ends.
    ``service_account``: the Kubernetes driver pod's account (default: the notebook's). ``environ``: the
    submitter's environment, where the backend reads its settings.
    """

    job: Job
    spec: ClusterSpec
    detach: bool = False
    keep: bool = False
    service_account: str | None = None
    environ: Mapping[str, str] = field(default_factory=dict)
