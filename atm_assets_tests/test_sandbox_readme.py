"""The sandbox README documents exactly the APIs the registry serves."""

from __future__ import annotations

from atm_assets.sandbox import API_SPECS
from atm_assets.sandbox.apidoc import README, readme_block, render_api_table


def test_readme_api_block_matches_the_registry() -> None:
    text = README.read_text(encoding="utf-8")
    assert readme_block(text) == render_api_table(), (
        "run `python -m atm_assets.sandbox.apidoc` to refresh atm_assets/sandbox/README.md"
    )


def test_readme_describes_how_every_api_is_generated() -> None:
    text = README.read_text(encoding="utf-8")
    described = text[text.index("### How each API is generated") :]
    for name in API_SPECS:
        base = name.removesuffix("_vip")
        financial = base in ("income", "balancesheet", "cashflow", "fina_indicator",
                             "forecast", "express", "dividend")  # fmt: skip
        assert f"`{base}`" in described or financial, name
