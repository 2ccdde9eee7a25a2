import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_layers_hold():
    """core <- inventory <- prescriptions; core <- {payments, logistics}, which know no
    other domain; the domain apps <- orders <- {notifications, audit, forecasting} <- privacy;
    simulator and bench import none of them (import-linter contracts in pyproject.toml)."""
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is not installed"
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_contracts_say_which_domain_may_know_which():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c["layers"] for c in config["contracts"] if c["type"] == "layers")
    assert layers == [
        "cot_project",
        "privacy",
        "notifications | audit | forecasting",
        "orders",
        "prescriptions | payments | logistics",
        "inventory",
        "core",
    ]
    # The layers alone would let payments and logistics read the catalog.
    assert any(
        c["type"] == "forbidden"
        and {"payments", "logistics"} <= set(c["source_modules"])
        and {"inventory", "prescriptions"} <= set(c["forbidden_modules"])
        for c in config["contracts"]
    )
