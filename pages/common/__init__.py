"""Non-page helpers of the app (never mistaken for pages: ``st.navigation`` lists the pages explicitly).

* every ``st.cache_resource`` / ``st.cache_data`` computation, by concern: ``model_loaders`` (the shared models,
  their NumPy weights), ``image_loaders`` (decoded images, samples, Navon figures, model pixels), ``traces`` (the
  forward pass and what is derived per input), ``figure_cache`` (built figures), ``heavy_runs`` (attributions,
  NumPy reference, calibration), ``stats_loaders`` (dataset statistics), ``memory`` (trimming after evictions)
* ``inputs`` — one value for "an input" (image, model, preprocessing, its trace), built by ``build_input`` for A
  (the sidebar) and B (the A/B compare)
* ``sidebar`` — the shared sidebar widgets → ``context.AppContext``
* ``startup`` — page config, navigation, sidebar → the run's context (``app.py``; pages: ``page_context()``)
* ``context`` — the per-run context (data) and the shared query token
* ``widgets`` — page header/lesson, figure display + downloads, block/head/query pickers
* ``images`` — decoding, validation and preprocessing (PIL + NumPy, no Streamlit)
* ``models`` — building the offered models and what to say about them (no Streamlit)
* ``analysis`` — numbers derived from a trace: top-k, pipeline table, costs, parity, one weight explained
* ``texts`` — teaching text filled with live numbers; ``navigation`` — the page list; ``settings`` — paths, CLI
"""
