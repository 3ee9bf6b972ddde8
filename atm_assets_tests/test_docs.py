"""Docs generated from the declarations stay equal to them: README tables, the example config."""

from pathlib import Path

from atm_assets import docs
from atm_assets.core.settings import declared, load_settings, read_config_file

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_tables_are_generated_from_the_declarations():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert docs.render(text) == text, "README.md is stale: python -m atm_assets.docs --write"
    assert docs.main([]) == 0


def test_every_setting_is_in_the_readme_with_its_variable_and_key():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for setting in declared():
        assert f"| `{setting.env}` | `{setting.key}` |" in text


def test_the_example_config_lists_every_key_with_its_default(tmp_path, monkeypatch):
    example = ROOT / "config/data_ingestor.example.yaml"
    values = read_config_file(example)
    assert sorted(values) == sorted(d.key for d in declared())
    # Loading it changes nothing: every value in it is the default.
    monkeypatch.chdir(tmp_path)
    assert load_settings(example, env={}).model_dump(exclude={"source"}) == load_settings(
        env={}
    ).model_dump(exclude={"source"})
