from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from recovery.config import ConfigError, load_config
from recovery.settings import REPO_ROOT


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(REPO_ROOT / "config", target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def _problems(config_dir: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir)
    return caught.value.problems


def test_default_config_covers_the_required_networks(default_config) -> None:  # type: ignore[no-untyped-def]
    assert {"ethereum", "bsc", "polygon", "arbitrum", "tron", "xrpl", "stellar", "solana", "bitcoin",
            "cosmoshub"} <= set(default_config.networks)
    bsc_usdt = default_config.asset_by_symbol("bsc", "usdt")
    eth_usdt = default_config.asset_by_symbol("ethereum", "USDT")
    assert bsc_usdt is not None and bsc_usdt.decimals == 18
    assert eth_usdt is not None and eth_usdt.decimals == 6
    assert eth_usdt.contract == "0xdAC17F958D2ee523a2206206994597C13D831ec7"
    assert default_config.native_asset("bsc").symbol == "BNB"
    assert default_config.network("bsc").poa is True
    # every category has a fee rule (free or priced)
    from recovery.vocabulary import Category

    for category in Category:
        assert default_config.fee_rule(category.value, "ethereum", "USDT") is not None, category


def test_amounts_are_exact_decimals(default_config) -> None:  # type: ignore[no-untyped-def]
    usdt = default_config.asset_by_symbol("ethereum", "USDT")
    assert usdt is not None
    assert usdt.price_usd == Decimal("1.00")
    assert usdt.to_base_units(Decimal("12.345678")) == 12_345_678
    assert usdt.from_base_units(1) == Decimal("0.000001")
    with pytest.raises(ValueError, match="more than 6 decimals"):
        usdt.to_base_units(Decimal("0.0000001"))


def test_first_matching_fee_rule_wins(config_dir: Path) -> None:
    fees = config_dir / "fees.toml"
    fees.write_text(
        '[[fees]]\ncategory = "unlisted_token"\nnetwork = "bsc"\nflat_usd = "10"\n\n' + fees.read_text()
    )
    config = load_config(config_dir)
    bsc_rule = config.fee_rule("unlisted_token", "bsc", "FOO")
    eth_rule = config.fee_rule("unlisted_token", "ethereum", "FOO")
    assert bsc_rule is not None and bsc_rule.flat_usd == Decimal(10)
    assert eth_rule is not None and eth_rule.flat_usd == Decimal(80)


def test_every_problem_is_named_by_file_entry_and_key(config_dir: Path) -> None:
    _edit(config_dir / "networks.toml", 'family = "tron"', 'family = "tronix"')
    _edit(config_dir / "networks.toml", 'rpc_urls = ["http://127.0.0.1:8546"]', 'rpc_urls = ["ftp://nowhere"]')
    _edit(config_dir / "assets.toml", 'min_deposit = "0.001"', 'min_deposit = "a lot"')
    _edit(config_dir / "fees.toml", 'category = "below_minimum"', 'category = "below_minimun"')
    problems = _problems(config_dir)
    joined = "\n".join(problems)
    assert "networks.toml: [networks.tron]: family:" in joined
    assert "networks.toml: [networks.bsc]: rpc_urls:" in joined and "ftp://nowhere" in joined
    assert "assets.toml: [[assets]] #1 (ethereum/ETH): min_deposit:" in joined and "a lot" in joined
    assert "fees.toml:" in joined and "below_minimun" in joined and "category" in joined


def test_float_amounts_are_refused(config_dir: Path) -> None:
    _edit(config_dir / "assets.toml", 'price_usd = "3000"', "price_usd = 3000.5")
    # TOML floats are read as exact decimals, so a literal 3000.5 is accepted exactly ...
    config = load_config(config_dir)
    eth = config.asset_by_symbol("ethereum", "ETH")
    assert eth is not None and eth.price_usd == Decimal("3000.5")
    # ... but booleans and non-finite values are not amounts
    _edit(config_dir / "assets.toml", "price_usd = 3000.5", "price_usd = true")
    assert any("price_usd" in p and "decimal" in p for p in _problems(config_dir))
    _edit(config_dir / "assets.toml", "price_usd = true", 'price_usd = "NaN"')
    assert any("price_usd" in p for p in _problems(config_dir))


def test_duplicate_asset_and_unknown_network(config_dir: Path) -> None:
    assets = config_dir / "assets.toml"
    assets.write_text(
        assets.read_text()
        + '\n[[assets]]\nnetwork = "ethereum"\nsymbol = "usdt"\ncontract = "0x1111111111111111111111111111111111111111"'
        + '\ndecimals = 6\n\n[[assets]]\nnetwork = "dogechain"\nsymbol = "DOGE"\ndecimals = 8\n'
    )
    _edit(config_dir / "fees.toml", 'category = "unlisted_token"\nnetwork = "*"',
          'category = "unlisted_token"\nnetwork = "fantom"')
    problems = "\n".join(_problems(config_dir))
    assert "symbol: duplicate of entry #2 (usdt on ethereum)" in problems
    assert "network: unknown network 'dogechain'" in problems
    assert "network: unknown network 'fantom'" in problems


def test_evm_networks_need_a_chain_id_and_memo_networks_a_format(config_dir: Path) -> None:
    _edit(config_dir / "networks.toml", "chain_id = 137\n", "")
    _edit(config_dir / "networks.toml", 'memo_format = "uint32"\n', "")
    problems = "\n".join(_problems(config_dir))
    assert "[networks.polygon]" in problems and "chain_id is required" in problems
    assert "[networks.xrpl]" in problems and "memo_format" in problems


def test_missing_file_and_bad_toml(config_dir: Path) -> None:
    (config_dir / "fees.toml").unlink()
    (config_dir / "assets.toml").write_text("[[assets]\nbroken")
    problems = "\n".join(_problems(config_dir))
    assert "fees.toml: file not found" in problems
    assert "assets.toml: not valid TOML" in problems


def test_extra_keys_are_kept_for_operators(config_dir: Path) -> None:
    _edit(config_dir / "networks.toml", "[networks.ethereum]\n", '[networks.ethereum]\nowner_team = "eth-ops"\n')
    config = load_config(config_dir)
    assert config.network("ethereum").model_extra == {"owner_team": "eth-ops"}


def test_information_request_templates_are_checked_and_offered_by_category(config_dir: Path) -> None:
    config = load_config(config_dir)
    assert "ownership_proof" in config.templates_for("missing_memo")
    assert "ownership_proof" not in config.templates_for("wrong_network")
    assert "screenshot" in config.templates_for("wrong_network")  # no categories: offered everywhere
    # the templates are no part of a decision: editing them leaves the rules version alone
    (config_dir / "templates.toml").write_text('[templates.short]\ntitle = "T"\nmessage = "M"\n')
    assert load_config(config_dir).digest == config.digest
    (config_dir / "templates.toml").write_text(
        '[templates.Bad-Name]\ntitle = "T"\nmessage = "M"\n'
        '[templates.odd]\ntitle = "T"\nmessage = "M"\ncategories = ["not_a_category"]\n'
        '[templates.empty]\ntitle = "T"\nmessage = ""\nsurprise = 1\n')
    problems = _problems(config_dir)
    assert any("templates.toml: [templates.Bad-Name]: the name" in p for p in problems)
    assert any(p.startswith("templates.toml: [templates.odd]: categories") for p in problems)
    assert any(p.startswith("templates.toml: [templates.empty]: message") for p in problems)
    assert any(p.startswith("templates.toml: [templates.empty]: surprise") for p in problems)


def test_a_reminder_must_come_before_the_close(config_dir: Path) -> None:
    _edit(config_dir / "policy.toml", "info_reminder_hours = 72", "info_reminder_hours = 400")
    assert any("policy.toml: [policy]" in p and "info_reminder_hours must be less" in p
               for p in _problems(config_dir))
