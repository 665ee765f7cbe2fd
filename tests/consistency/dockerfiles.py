"""Readers for the image recipes in images/, for the tests: a small Dockerfile parser, the apt lists, the frozen pins.

The parser knows what our Dockerfiles use: full-line comments, ``\\`` continuations, ``FROM ... AS``,
``ARG``/``ENV`` in ``key=value`` form, JSON-form ``ENTRYPOINT``/``CMD`` and ``COPY [--from=...]``.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    stage: int  # index of the FROM this instruction follows (-1: before the first FROM)
    keyword: str
    args: str


@dataclass(frozen=True)
class Dockerfile:
    path: Path
    text: str
    instructions: tuple[Instruction, ...]

    @classmethod
    def load(cls, path: Path) -> Dockerfile:
        text = path.read_text()
        instructions: list[Instruction] = []
        stage = -1
        pending = ""
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.endswith("\\"):
                pending += line[:-1].rstrip() + " "
                continue
            logical = pending + line
            pending = ""
            keyword, _, args = logical.partition(" ")
            keyword = keyword.upper()
            if keyword == "FROM":
                stage += 1
            instructions.append(Instruction(stage, keyword, args.strip()))
        if pending:
            raise ValueError(f"{path}: the last instruction ends with a continuation")
        return cls(path, text, tuple(instructions))

    def _all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def _final_stage(self) -> list[Instruction]:
        last = max(i.stage for i in self.instructions)
        return [i for i in self.instructions if i.stage == last]

    def from_images(self) -> list[str]:
        return [i.args.split()[0] for i in self._all("FROM")]

    def stage_names(self) -> set[str]:
        names = set()
        for i in self._all("FROM"):
            words = i.args.split()
            if len(words) == 3 and words[1].upper() == "AS":
                names.add(words[2])
        return names

    def arg_default(self, name: str) -> str:
        """The default of the first ``ARG name=default``."""
        for i in self._all("ARG"):
            key, sep, value = i.args.partition("=")
            if key == name and sep:
                return value
        raise KeyError(f"{self.path}: no ARG {name}=... with a default")

    def runs(self) -> list[str]:
        """Every RUN's command, continuations joined with a space."""
        return [i.args for i in self._all("RUN")]

    def final(self, keyword: str) -> list[str]:
        """The arguments of every ``keyword`` instruction in the last stage."""
        return [i.args for i in self._final_stage() if i.keyword == keyword]

    def final_json(self, keyword: str) -> list[str]:
        """The last ``keyword`` of the last stage, in JSON (exec) form."""
        return json.loads(self.final(keyword)[-1])

    def final_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for args in self.final("ENV"):
            for word in shlex.split(args):
                key, _, value = word.partition("=")
                env[key] = value
        return env

    def _copy_args(self) -> list[list[str]]:
        words = [shlex.split(i.args) for i in self._all("COPY")]
        return [w for w in words if not any(x.startswith("--from=") for x in w)]

    def copy_sources(self) -> list[str]:
        """Sources of every COPY from the build context (not ``--from`` a stage)."""
        return [s for w in self._copy_args() for s in w[:-1] if not s.startswith("--")]

    def copies(self) -> dict[str, str]:
        """Source -> destination of the single-source COPYs from the build context."""
        result = {}
        for words in self._copy_args():
            sources = [s for s in words[:-1] if not s.startswith("--")]
            if len(sources) == 1:
                result[sources[0]] = words[-1]
        return result


def apt_list(path: Path) -> list[str]:
    """The package names of an apt list: one per line, ``#`` comments and blank lines ignored."""
    return [word for line in path.read_text().splitlines() for word in line.split("#", 1)[0].split()]


def frozen_pins(path: Path) -> dict[str, str]:
    """``name -> version`` of a frozen requirements file (``name==version`` lines)."""
    pins = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name] = version
    return pins
