"""The workbench entry script (``streamlit run app/workbench/main.py``; ``recovery workbench`` does it).

Signed out: only the sign-in page exists. Signed in: the pages of the operator's role
(``app/workbench/pages.py``) through ``st.navigation``.
"""

from __future__ import annotations

import streamlit as st

from app.workbench import auth, ui
from app.workbench.pages import PAGES, pages_for
from recovery.vocabulary import Role

st.set_page_config(page_title="Recovery workbench", page_icon="🪙", layout="wide")

info = auth.signed_in()
if info is None:
    # Signed out, every page's address shows the sign-in: a reload or a shared link keeps its address
    # (a case's ``?ref=``, the queue's filters), and that page opens with it once signed in.
    sign_in_pages = [st.Page(auth.sign_in_page, title="Sign in", url_path="signin", default=True)]
    sign_in_pages += [st.Page(auth.sign_in_page, title=f"Sign in: {spec.title}", url_path=spec.url_path)
                      for spec in PAGES]
    st.navigation(sign_in_pages, position="hidden").run()
else:
    role = Role(info.role)
    sections: dict[str, list[st.Page]] = {}
    for spec in pages_for(role):
        sections.setdefault(spec.section, []).append(
            st.Page(spec.path, title=spec.title, url_path=spec.url_path)
        )
    navigation = st.navigation(sections)
    with st.sidebar:
        st.caption("Signed in as")
        st.text(f"{info.username} ({role.value})")
        if role is Role.AUDITOR:
            st.caption("Read-only: auditors see everything and change nothing.")
        st.button("Sign out", key="wb_sign_out", on_click=auth.sign_out, args=("You are signed out.",))
    ui.show_flashes()
    navigation.run()
