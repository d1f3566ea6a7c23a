"""Install as an admin would: the wheel in a fresh venv, run from another directory;
the systemd unit as the README installs it.

The wheel is built offline (``--no-build-isolation``: setuptools comes with the test
extras) from a copy of the tree, so the checkout gets no ``build/`` folder. The fresh
venv gets maild from the wheel only; its dependencies are reached through a ``.pth``
line to this venv's site-packages (no network in tests), whose editable maild is not
on that path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.shipped_settings import write_settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "mail" / "gmail-ptbr-alternative-base64.eml"
# Source folder -> where its files land in the wheel (pyproject package-dir).
SHIPPED_TREES = {"maild": "maild", "parsers": "maild/parsers", "storage": "maild/storage"}
SHIPPED_TREES["templates"] = "maild/templates"
PIP = [sys.executable, "-m", "pip"]


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)  # type: ignore[call-overload, no-any-return]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", "var", ".pytest_cache"
        ),
    )
    dist = work / "dist"
    built = _run(
        [
            *PIP,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(source),
            "-w",
            str(dist),
        ]
    )
    assert built.returncode == 0, built.stderr
    wheels = list(dist.glob("maild-*.whl"))
    assert len(wheels) == 1
    return wheels[0], built.stdout + built.stderr


def test_wheel_builds_without_warnings(wheel: tuple[Path, str]) -> None:
    _, output = wheel
    warnings = [line for line in output.splitlines() if "warning" in line.lower()]
    assert warnings == []


def test_wheel_carries_every_shipped_file_and_no_generic_top_level_name(
    wheel: tuple[Path, str],
) -> None:
    path, _ = wheel
    names = set(zipfile.ZipFile(path).namelist())
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"maild"}

    expected = set()
    for folder, target in SHIPPED_TREES.items():
        for file in (REPO / folder).rglob("*"):
            if file.is_file() and "__pycache__" not in file.parts:
                relative = file.relative_to(REPO / folder).as_posix()
                if target == "maild" and relative.split("/")[0] in ("__pycache__",):
                    continue
                expected.add(f"{target}/{relative}")
    assert sorted(expected - names) == []


@pytest.fixture(scope="module")
def venv(wheel: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv") / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(root)])
    assert made.returncode == 0, made.stderr
    python = root / "bin" / "python"
    installed = _run(
        [*PIP, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel[0])]
    )
    assert installed.returncode == 0, installed.stderr
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    deps = Path(sysconfig.get_paths()["purelib"])
    (Path(site.stdout.strip()) / "maild-test-deps.pth").write_text(f"{deps}\n", "utf-8")
    return root


def test_installed_wheel_runs_from_another_directory(venv: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = write_settings(tmp_path)
    maild = [str(venv / "bin" / "maild"), "--config", str(config)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MAILD_CONFIG")}

    where = _run(
        [str(venv / "bin" / "python"), "-c", "import maild.render as r; print(r.__file__)"],
        cwd=elsewhere,
        env=env,
    )
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr
    clash = _run([str(venv / "bin" / "python"), "-c", "import parsers"], cwd=elsewhere, env=env)
    assert "ModuleNotFoundError" in clash.stderr

    checked = _run([*maild, "check-config"], cwd=elsewhere, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "template" not in (checked.stdout + checked.stderr).lower()

    assert _run([*maild, "db", "migrate"], cwd=elsewhere, env=env).returncode == 0
    ingested = _run([*maild, "ingest", str(FIXTURE)], cwd=elsewhere, env=env)
    assert ingested.returncode == 0, ingested.stderr
    result = json.loads(ingested.stdout.splitlines()[0])
    assert result["outcome"] == "created"
    assert result["ticket"]

    # The confirmation was rendered from the packaged templates and queued.
    queued = _run([*maild, "outbox", "list", "--json"], cwd=elsewhere, env=env)
    assert queued.returncode == 0, queued.stderr
    rows = json.loads(queued.stdout)
    assert [(r["template"], r["ticket"]) for r in rows][:1] == [("confirmation", result["ticket"])]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_unit_verifies(venv: Path, tmp_path: Path) -> None:
    unit = (REPO / "systemd" / "maild.service").read_text(encoding="utf-8")
    unit = unit.replace("/opt/maild/.venv", str(venv))
    target = tmp_path / "maild.service"
    target.write_text(unit, encoding="utf-8")

    verified = _run(["systemd-analyze", "verify", str(target)])

    problems = [
        line
        for line in (verified.stdout + verified.stderr).splitlines()
        if str(target) in line or "maild.service" in line
    ]
    assert verified.returncode == 0 and problems == [], verified.stdout + verified.stderr
