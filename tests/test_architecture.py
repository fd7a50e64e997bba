"""The layers, and ml/ without Django, as a contract (pyproject.toml, [tool.importlinter]): across
apps, views and jobs call services and selectors, which stand on models, never the reverse; no two
apps import each other in a circle; no app imports config/. No import is excepted."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_the_import_contracts_are_kept():
    result = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


LAYERED = ("views", "jobs", "services", "selectors", "models")


def test_the_layers_contract_names_every_layered_module_of_every_app():
    """A new app's views, jobs, services, selectors and models take their layer in the contract,
    or a lower one could import them unchecked."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["id"] == "layers"]
    named = {name.strip() for layer in layers for name in re.split(r"[:|]", layer)}
    present = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts[:3])  # apps.<app>.<kind>, module or package
        for kind in LAYERED
        for path in [*ROOT.glob(f"apps/*/{kind}.py"), *ROOT.glob(f"apps/*/{kind}/__init__.py")]
    }
    assert present - named == set(), "modules missing from the layers contract"
    assert named - present == set(), "the layers contract names modules that do not exist"
