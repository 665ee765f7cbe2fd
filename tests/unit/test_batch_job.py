"""What occam submit runs: a script or a module, checked before anything starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from occam.batch.job import LAUNCHER_NAME, Job, launcher_source
from occam.errors import ConfigError


def test_a_job_is_a_script_or_a_module_not_both_nor_neither():
    with pytest.raises(ConfigError, match="a script .* or a module"):
        Job()
    with pytest.raises(ConfigError, match="not both"):
        Job(script="a.py", module="a")


def test_scripts_must_be_python_files_and_modules_dotted_names():
    with pytest.raises(ConfigError, match="ending in .py"):
        Job(script="train.sh")
    with pytest.raises(ConfigError, match="not a module name"):
        Job(module="occam/examples")


def test_a_missing_script_names_the_path_and_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"no script 'nope.py' \(looked from .*\); check the path"):
        Job(script="nope.py").source()


def test_a_script_job_ships_the_script_under_its_own_name(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("print('hi')\n")
    job = Job(script=str(script), args=("--epochs", "3"))
    assert job.file_name == "train.py" and job.source() == "print('hi')\n"


def test_the_launcher_runs_a_module_as_main_with_the_jobs_arguments(tmp_path):
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "job.py").write_text(
        "import sys\nif __name__ == '__main__':\n    print(sys.argv)\n    sys.exit(7)\n"
    )
    job = Job(module="mypkg.job")
    assert job.file_name == LAUNCHER_NAME
    launcher = tmp_path / LAUNCHER_NAME
    launcher.write_text(launcher_source("mypkg.job"))
    done = subprocess.run(
        [sys.executable, str(launcher), "--epochs", "3"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode == 7, done.stderr
    assert done.stdout.strip().endswith("'--epochs', '3']")
