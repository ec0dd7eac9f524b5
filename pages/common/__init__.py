"""Non-page helpers of the app (never mistaken for pages: ``st.navigation`` lists the pages explicitly).

* ``loaders`` — every ``st.cache_resource`` / ``st.cache_data`` computation (models, traces, figures, extras)
* ``sidebar`` — the shared sidebar widgets → ``context.AppContext``
* ``startup`` — page config, navigation, sidebar → the run's context (``app.py``; pages: ``page_context()``)
* ``context`` — the per-run context (data) and the shared query token
* ``widgets`` — page header/lesson, figure display + downloads, block/head/query pickers
* ``images`` — decoding, validation and preprocessing (PIL + NumPy, no Streamlit)
* ``models`` — building the offered models and what to say about them (no Streamlit)
* ``analysis`` — numbers derived from a trace: top-k, pipeline table, costs, parity, one weight explained
* ``texts`` — teaching text filled with live numbers; ``navigation`` — the page list; ``settings`` — paths, CLI
"""
