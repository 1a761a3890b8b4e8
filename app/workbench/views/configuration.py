"""Configuration: networks, assets, fee rules and policy as loaded (read-only), and a fee calculator."""

from __future__ import annotations

import streamlit as st

from app.workbench import auth, ui
from app.workbench.context import current
from recovery.errors import FieldError
from recovery.fees import compute_fee, dec_text, match_rule
from recovery.intake import parse_positive_decimal
from recovery.vocabulary import Category

OTHER = "(another token: give decimals and price)"


def render() -> None:
    if auth.signed_in() is None:
        return
    wb = current()
    config = wb.config
    st.title("Configuration")
    st.caption(f"As loaded by this workbench (read-only). Digest {config.digest[:16]}. Change the TOML files "
               "and restart to apply.")
    networks, assets, fees, calculator = st.tabs(["Networks", "Assets", "Fee rules", "Fee calculator"])
    with networks:
        ui.table(
            [{"network": n.name, "family": n.family, "chain id": n.chain_id or "-", "confirmations": n.confirmations,
              "native": n.native_asset, "recovery": n.recovery,
              "memo": n.memo_format if n.memo_required else "-", "deposits": "on" if n.deposits_enabled else "off",
              "nodes": len(n.rpc_urls), "explorer": n.explorer_tx_url} for n in config.networks.values()],
            ["network", "family", "chain id", "confirmations", "native", "recovery", "memo", "deposits", "nodes",
             "explorer"], key="cfg_networks",
        )
        policy = config.policy
        ui.field_table([
            ("four-eyes above (USD)", dec_text(policy.four_eyes_above_usd)),
            ("four-eyes resolutions", ", ".join(policy.four_eyes_resolutions)),
            ("SLA (hours)", policy.sla_hours), ("dust below (USD)", dec_text(policy.dust_below_usd)),
        ], key="cfg_policy")
    with assets:
        ui.table(
            [{"network": a.network, "symbol": a.symbol, "contract": a.contract or "(native)", "decimals": a.decimals,
              "min deposit": dec_text(a.min_deposit), "deposits": "on" if a.deposits_enabled else "off",
              "price USD": dec_text(a.price_usd)} for a in config.assets],
            ["network", "symbol", "contract", "decimals", "min deposit", "deposits", "price USD"], key="cfg_assets",
        )
    with fees:
        st.caption("First match wins; `*` matches anything.")
        ui.table(
            [{"#": i + 1, "category": f.category, "network": f.network, "asset": f.asset,
              "flat USD": dec_text(f.flat_usd), "percent": dec_text(f.percent),
              "free below USD": dec_text(f.free_below_usd), "min USD": dec_text(f.min_usd),
              "max USD": dec_text(f.max_usd) or "-", "min value USD": dec_text(f.min_value_usd),
              "max age days": f.max_age_days or "-"} for i, f in enumerate(config.fees)],
            ["#", "category", "network", "asset", "flat USD", "percent", "free below USD", "min USD", "max USD",
             "min value USD", "max age days"], key="cfg_fees",
        )
    with calculator:
        _calculator()


def _calculator() -> None:
    config = current().config
    cols = st.columns(3)
    category = cols[0].selectbox("Category", [c.value for c in Category], key="fee_category",
                                 index=[c.value for c in Category].index(Category.WRONG_NETWORK.value))
    network = cols[1].selectbox("Network", list(config.networks), key="fee_network")
    listed = config.assets_on(network)
    symbol = cols[2].selectbox("Asset", [a.symbol for a in listed] + [OTHER], key="fee_asset")
    cols = st.columns(3)
    amount_raw = cols[0].text_input("Amount (asset units)", value="250", key="fee_amount")
    asset = next((a for a in listed if a.symbol == symbol), None)
    if asset is None:
        decimals = int(cols[1].number_input("Decimals", min_value=0, max_value=36, value=18, key="fee_decimals"))
        price_raw = cols[2].text_input("Price (USD, empty: unknown)", key="fee_price")
        identifiers = ["*"]
    else:
        decimals = asset.decimals
        # keyed per asset: switching the asset shows that asset's configured price
        price_raw = cols[2].text_input("Price (USD)", value=dec_text(asset.price_usd) or "",
                                       key=f"fee_price_{network}_{asset.symbol}")
        identifiers = [asset.symbol] + ([asset.contract] if asset.contract else [])
    errors: list[FieldError] = []
    amount = parse_positive_decimal(amount_raw, "amount", errors)
    price = parse_positive_decimal(price_raw, "price", errors) if price_raw.strip() else None
    if errors or amount is None:
        for error in errors or [FieldError("amount", "is required")]:
            st.text(str(error))
        return
    matched = match_rule(config.fees, category, network, identifiers)
    try:
        fee = compute_fee(matched, amount, decimals, price)
    except ValueError as exc:
        st.error("This amount does not fit the asset:")
        st.text(str(exc))
        return
    result = st.columns(4)
    result[0].metric("Fee", ui.money(fee.fee, symbol if asset else ""))
    result[1].metric("Fee (USD)", ui.money(fee.fee_value_usd))
    result[2].metric("Net to the user", ui.money(fee.net))
    result[3].metric("Economical", "no" if fee.not_economical else "yes")
    ui.field_table([
        ("rule", matched.label() if matched else "none matches: free"),
        ("value (USD)", ui.money(fee.value_usd)), ("percent term (USD)", ui.money(fee.percent_term_usd)),
        ("fee before conversion (USD)", ui.money(fee.fee_usd)), ("capped at the amount", "yes" if fee.capped else "no"),
        ("max age (days)", fee.max_age_days), ("notes", " ".join(fee.notes)),
    ], key="fee_breakdown")


render()
