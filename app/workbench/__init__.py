"""The Streamlit workbench of the appeal team: ``recovery workbench`` runs ``app/workbench/main.py``."""
