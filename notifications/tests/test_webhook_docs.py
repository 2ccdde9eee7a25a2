"""The signature checks docs/API.md gives client developers work on what COT sends: the
Python one run here, the Node one with `node` (skipped where there is none)."""

import json
import re
import shutil
import subprocess

import pytest

from conftest import ROOT
from core.webhooks import webhook_signature, webhook_signatures

BODY = b'{"at":"2026-12-04T10:15:31Z","data":{},"id":1,"order_id":"x","type":"order.received"}'
NEW, OLD, OTHER = "new-secret", "old-secret", "someone-else"
# (header, secret the receiver knows, valid?)
CASES = [
    (webhook_signature(NEW, BODY), NEW, True),
    (webhook_signatures([NEW, OLD], BODY), NEW, True),  # a rotation's grace period
    (webhook_signatures([NEW, OLD], BODY), OLD, True),
    (webhook_signatures([NEW, OLD], BODY), OTHER, False),
    (webhook_signature(NEW, BODY + b" "), NEW, False),  # another body
    (webhook_signature(NEW, BODY)[:-1], NEW, False),
    ("", NEW, False),
    (None, NEW, False),
]


def snippet(language: str, defines: str) -> str:
    """The fenced `language` block of docs/API.md that defines `defines`."""
    text = (ROOT / "docs/API.md").read_text()
    blocks = re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)
    [block] = [b for b in blocks if defines in b]
    return block


def test_the_python_snippet_accepts_either_signature_and_nothing_else():
    namespace: dict = {}
    exec(snippet("python", "def cot_signature_valid"), namespace)  # noqa: S102
    check = namespace["cot_signature_valid"]
    assert [check(BODY, header, secret) for header, secret, _ in CASES] == [
        valid for *_, valid in CASES
    ]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_node_snippet_accepts_either_signature_and_nothing_else(tmp_path):
    (tmp_path / "verify.js").write_text(snippet("js", "function cotSignatureValid"))
    cases = [[header, secret] for header, secret, _ in CASES]
    (tmp_path / "run.js").write_text(
        'const { cotSignatureValid } = require("./verify.js");\n'
        f"const body = Buffer.from({json.dumps(BODY.decode())});\n"
        f"const cases = {json.dumps(cases)};\n"
        "console.log(JSON.stringify(cases.map(([h, s]) => cotSignatureValid(body, h, s))));\n"
    )
    result = subprocess.run(
        ["node", "run.js"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [valid for *_, valid in CASES]
