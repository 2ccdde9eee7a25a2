"""docs/PRIVACY.md lists every store of personal data the code redacts or exports, and
docs/API.md documents every section of the export."""

from pathlib import Path

from privacy.shredders import SHREDDERS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_store_is_in_the_privacy_page_and_every_export_section_in_the_api_page():
    privacy = (DOCS / "PRIVACY.md").read_text()
    api = (DOCS / "API.md").read_text()
    for shredder in SHREDDERS:
        assert f"`{type(shredder).__name__}`" in privacy, type(shredder).__name__
        if shredder.section:
            assert f'"{shredder.section}": [' in api, shredder.section
    assert '"schema_version": 1' in api
