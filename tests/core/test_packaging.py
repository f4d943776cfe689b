"""mmeval installs like a library: torch and torchvision are ranges a GPU environment satisfies, the dev/CI
machines' exact releases live in constraints.txt, and pip keeps a torch that is already chosen."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
# Releases of real GPU environments the ranges must admit (the oldest supported, a recent one, this machine's)
TORCH_PAIRS = [("2.4.0", "0.19.0"), ("2.5.1", "0.20.1"), ("2.14.1", "0.29.1")]


def _requirements() -> dict[str, Requirement]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {r.name: r for r in map(Requirement, deps)}


def test_torch_and_torchvision_are_ranges_not_pins():
    reqs = _requirements()
    for name in ("torch", "torchvision"):
        assert not any(s.operator in ("==", "===", "~=") for s in reqs[name].specifier), reqs[name]
    for torch_version, vision_version in TORCH_PAIRS:
        assert reqs["torch"].specifier.contains(torch_version), torch_version
        assert reqs["torchvision"].specifier.contains(vision_version), vision_version
    assert not reqs["torch"].specifier.contains("2.3.1")  # below the oldest release the code is written for


def test_constraints_pin_this_machines_releases_inside_the_ranges():
    reqs = _requirements()
    lines = [ln.split("#")[0].strip() for ln in (ROOT / "constraints.txt").read_text().splitlines()]
    pins = {r.name: r for r in map(Requirement, filter(None, lines))}
    assert set(pins) == {"torch", "torchvision"}
    for name, pin in pins.items():
        (spec,) = pin.specifier
        assert spec.operator == "==" and reqs[name].specifier.contains(spec.version), pin


def _fake_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
    """A wheel that carries only metadata: enough for pip's resolver, nothing to import."""
    info = f"{name}-{version}.dist-info"
    metadata = "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                        *(f"Requires-Dist: {r}\n" for r in requires)])
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as whl:
        whl.writestr(f"{info}/METADATA", metadata)
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: mmeval-tests\nRoot-Is-Purelib: true\n"
                                      "Tag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")


def _dry_run(project: Path, wheels: Path, *extra: str) -> subprocess.CompletedProcess:
    """pip's resolver, offline: the installed environment plus the fake wheels, nothing downloaded."""
    env = dict(os.environ, PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--find-links", str(wheels),
           "--no-build-isolation", "--quiet", "--report", str(project / "report.json"), str(project), *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def project_and_wheels(tmp_path):
    """This pyproject.toml (metadata only: no package code is needed to resolve) and fake torch 2.5.1 wheels."""
    project, wheels = tmp_path / "project", tmp_path / "wheels"
    project.mkdir()
    wheels.mkdir()
    shutil.copy(ROOT / "pyproject.toml", project)
    shutil.copy(ROOT / "README.md", project)
    _fake_wheel(wheels, "torch", "2.5.1")
    _fake_wheel(wheels, "torchvision", "0.20.1", ("torch==2.5.1",))
    return project, wheels


def test_pip_keeps_the_torch_a_gpu_environment_chose(project_and_wheels):
    project, wheels = project_and_wheels
    result = _dry_run(project, wheels, "torch==2.5.1")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((project / "report.json").read_text())
    chosen = {item["metadata"]["name"]: item["metadata"] for item in report["install"]}
    assert chosen["torch"]["version"] == "2.5.1" and chosen["torchvision"]["version"] == "0.20.1"
    built = {Requirement(r).name: Requirement(r) for r in chosen["mmeval"]["requires_dist"]}
    assert str(built["torch"].specifier) == str(_requirements()["torch"].specifier)


@pytest.mark.slow  # a second pip resolution, only to show the one above can fail
def test_an_exact_pin_would_refuse_it(project_and_wheels):
    """The check above can fail: with the old exact pin the same resolution is impossible."""
    project, wheels = project_and_wheels
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    torch_line = next(ln for ln in text.splitlines() if ln.strip().startswith('"torch>='))
    pyproject.write_text(text.replace(torch_line, '    "torch==2.14.1",'))
    result = _dry_run(project, wheels, "torch==2.5.1")
    assert result.returncode != 0
    assert re.search(r"Cannot install mmeval==\S+ and torch==2\.5\.1", result.stderr), result.stderr[-3000:]
