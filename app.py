"""CrossFormer Explorer — entry point (`streamlit run app.py`). Pages are wired in the app issue."""

import streamlit as st

st.set_page_config(page_title="CrossFormer Explorer", layout="wide")
st.title("CrossFormer Explorer")
st.write("See what a windowed, cross-scale vision transformer computes. The pages are under construction.")
